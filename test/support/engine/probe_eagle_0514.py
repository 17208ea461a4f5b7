"""Run upstream sglang 0.5.14's real EAGLE verify (eagle_sample) on two CPU processes that form a
real TP group (torch.distributed, gloo), with HIP faked in eagle_utils, and report what each rank
committed. PYTHONPATH=<tree>:test/support/engine; argv: JSON {"world_size": 2}; prints one PROBE-RESULT
line: per rank, the accept count its own logits give and what eagle_sample returned.

The ranks get different target logits (what non-deterministic all-reduce does on a real node),
so their local greedy verify accepts a different number of drafts. sgl_kernel's
verify_tree_greedy (a GPU kernel) is stood in for by its Python reference below; everything else
— the branch HIP takes, the TP group, the broadcast — is sglang's own.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import cpu_sglang
import torch.multiprocessing as mp
from model_configs import glm5_config

VOCAB = 32
DRAFT_TOKENS = [10, 11, 12, 13]  # the verified root token, then three chained drafts
# the target's argmax after each position: rank 0 accepts two drafts, rank 1 one
TARGET_ARGMAX = {0: [11, 12, 5, 7], 1: [11, 9, 5, 7]}


def verify_tree_greedy(
    predicts,
    accept_index,
    accept_token_num,
    candidates,
    retrive_index,
    retrive_next_token,
    retrive_next_sibling,
    target_predict,
):
    """sgl_kernel.verify_tree_greedy, in Python: walk the draft tree, accept while the target
    agrees, write the target's token after each accepted position."""
    target = target_predict.flatten()
    for b in range(candidates.shape[0]):
        last = int(retrive_index[b, 0])
        accept_index[b, 0] = last
        accepted, cur = 0, 0
        for _ in range(1, accept_index.shape[1]):
            cur = int(retrive_next_token[b, cur])
            while cur != -1 and int(candidates[b, cur]) != int(target[last]):
                cur = int(retrive_next_sibling[b, cur])
            if cur == -1:
                break
            predicts[last] = target[last]
            accepted += 1
            accept_index[b, accepted] = int(retrive_index[b, cur])
            last = int(retrive_index[b, cur])
        accept_token_num[b] = accepted
        predicts[last] = target[last]


def inputs(rank: int):
    import torch

    n = len(DRAFT_TOKENS)
    logits = torch.zeros(n, VOCAB)
    logits[torch.arange(n), torch.tensor(TARGET_ARGMAX[rank])] = 1.0
    verify_input = SimpleNamespace(
        draft_token=torch.tensor(DRAFT_TOKENS, dtype=torch.int64),
        draft_token_num=n,
        max_tree_depth=n,
        retrieve_index=torch.arange(n).reshape(1, n),
        retrieve_next_token=torch.tensor([[1, 2, 3, -1]]),
        retrieve_next_sibling=torch.full((1, n), -1),
        tree_topk=1,
        grammar=None,
    )
    sampling_info = SimpleNamespace(
        is_all_greedy=True, acc_additive_penalties=None, acc_scaling_penalties=None, logit_bias=None
    )
    batch = SimpleNamespace(
        forward_mode=SimpleNamespace(is_idle=lambda: False),
        seq_lens=torch.tensor([7]),
        sampling_info=sampling_info,
        device="cpu",
    )
    return verify_input, batch, SimpleNamespace(next_token_logits=logits)


def local_accept(rank: int) -> int:
    import torch

    verify_input, _, logits = inputs(rank)
    n = len(DRAFT_TOKENS)
    count = torch.zeros(1, dtype=torch.int32)
    verify_tree_greedy(
        torch.zeros(n, dtype=torch.int32),
        torch.full((1, n), -1, dtype=torch.int32),
        count,
        verify_input.draft_token.reshape(1, n),
        verify_input.retrieve_index,
        verify_input.retrieve_next_token,
        verify_input.retrieve_next_sibling,
        logits.next_token_logits.argmax(-1).reshape(1, n),
    )
    return int(count[0])


def worker(rank: int, world_size: int, root: str) -> None:
    cpu_sglang.install(sgl_kernel=True)
    import sgl_kernel

    sgl_kernel.verify_tree_greedy = verify_tree_greedy
    from sglang.srt.distributed import parallel_state
    from sglang.srt.server_args import ServerArgs, set_global_server_args_for_scheduler

    model = Path(root) / "model"
    set_global_server_args_for_scheduler(
        ServerArgs(model_path=str(model), device="cpu", tp_size=world_size, skip_tokenizer_init=True)
    )
    parallel_state.init_distributed_environment(
        world_size=world_size,
        rank=rank,
        local_rank=rank,
        backend="gloo",
        distributed_init_method=f"file://{Path(root) / 'dist'}",
    )
    parallel_state.initialize_model_parallel(world_size)
    from sglang.srt.speculative import eagle_utils

    eagle_utils._is_hip = True  # the platform, faked for this test only: HIP takes the greedy branch
    predict, accept_length, accept_index = eagle_utils.eagle_sample(*inputs(rank))
    result = {
        "rank": rank,
        "local_accept": local_accept(rank),
        "predict": predict.tolist(),
        "accept_length": accept_length.tolist(),
        "accept_index": accept_index.tolist(),
    }
    (Path(root) / f"rank{rank}.json").write_text(json.dumps(result))


def main() -> None:
    world_size = json.loads(sys.argv[1])["world_size"]
    root = Path(tempfile.mkdtemp(prefix="eagle-probe-"))
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text(json.dumps(glm5_config(3)))
    mp.start_processes(worker, args=(world_size, str(root)), nprocs=world_size, start_method="spawn", join=True)
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(world_size)]
    print("PROBE-RESULT " + json.dumps(ranks))


if __name__ == "__main__":
    main()
