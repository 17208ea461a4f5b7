#!/usr/bin/env bash
# Build sgl-kernel (the `sglang-kernel` distribution) for ROCm from the base's sglang source, for
# the architectures in patches/bases.toml ([upstream.<base>.kernel]) (gfx950 = MI355X). Runs on a ROCm host or in the
# upstream ROCm image (needs hipcc and the ROCm torch); not run in this repository's CI.
#
#   sgl-kernel/build.sh [--base 0.5.14] [--src SGLANG_CHECKOUT] [--out DIR] [--print]
#
# Without --src it fetches sglang at the commit the base's record pins (never a movable tag; --src must be
# at that commit too when one is recorded). The wheel lands in --out (default
# build/sgl-kernel/<arch>/); install it with `pip install --no-deps` in the serving environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base="" src="" out="$here/../build/sgl-kernel" print=0
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --print) print=1; shift ;;
    *) echo "usage: $0 [--base VERSION] [--src DIR] [--out DIR] [--print]" >&2; exit 2 ;;
  esac
done
python=${PYTHON:-python3}
# The base's record is read by the tools' own reader (wafer_sglang.bases), linked in alone:
# python/ itself on the path would shadow sglang with the overlay.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
ln -s "$here/../python/wafer_sglang" "$tools/wafer_sglang"
recipe=$(cd "$here/.." && PYTHONPATH=$tools "$python" -m wafer_sglang bases --kernel "$base") || exit 2
read -r base tag version archs commit <<< "$recipe"
echo "sgl-kernel $version for sglang $base ($tag), architectures: $archs (setup_rocm.py builds one per wheel)"
[ "$commit" = "-" ] && commit=""
missing="patches/bases.toml records no kernel.sglang-commit for $base: a tag can move. Record the commit of $tag
  (git ls-remote https://github.com/sgl-project/sglang 'refs/tags/$tag^{}' on a machine with GitHub access),
  or pass --src CHECKOUT"
if [ -z "$src" ]; then
  src=$out/src-${commit:-$tag}
  fetch="git init -q $src && git -C $src fetch -q --depth 1 https://github.com/sgl-project/sglang.git ${commit:-<commit of $tag>} && git -C $src checkout -q FETCH_HEAD"
else
  fetch=""
fi
if [ "$print" = 1 ]; then
  [ -n "$fetch" ] && [ -z "$commit" ] && echo "# not runnable yet: $missing"
  [ -n "$fetch" ] && echo "$fetch"
  echo "cd <the ROCm setup folder of $src: sgl-kernel/ or python/sglang/kernels/aot/>"
  echo "cp pyproject_rocm.toml pyproject.toml   # when the folder has one"
  for arch in ${archs//,/ }; do
    echo "AMDGPU_TARGET=$arch $python setup_rocm.py bdist_wheel --dist-dir $out/$arch"
  done
  exit 0
fi
[ -n "$fetch" ] && [ -z "$commit" ] && { echo "$missing" >&2; exit 1; }
command -v hipcc >/dev/null || { echo "hipcc not found: build on a ROCm host or in the upstream ROCm image" >&2; exit 1; }
[ -n "$fetch" ] && [ ! -d "$src" ] && bash -c "$fetch"
if [ -n "$commit" ] && [ "$(git -C "$src" rev-parse HEAD 2>/dev/null)" != "$commit" ]; then
  echo "$src is not at sglang $tag's pinned commit $commit" >&2
  exit 1
fi
for dir in "$src/sgl-kernel" "$src/python/sglang/kernels/aot"; do
  [ -f "$dir/setup_rocm.py" ] && kdir=$dir && break
done
[ -n "${kdir:-}" ] || { echo "no setup_rocm.py under $src (sgl-kernel/ or python/sglang/kernels/aot/)" >&2; exit 1; }
cd "$kdir"
[ -f pyproject_rocm.toml ] && cp pyproject_rocm.toml pyproject.toml
found=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)
[ "$found" = "$version" ] || { echo "$kdir is sgl-kernel $found, the base pins $version: wrong checkout?" >&2; exit 1; }
for arch in ${archs//,/ }; do
  rm -rf build
  AMDGPU_TARGET=$arch "$python" setup_rocm.py bdist_wheel --dist-dir "$out/$arch"
  echo "built for $arch: $(ls "$out/$arch"/sglang_kernel-"$version"-*.whl)"
done
