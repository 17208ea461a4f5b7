"""What every benchmark plot shares: figures whose title and legend always fit (constrained
layout, the legend outside below the axes, long titles wrapped), the knee and failed steps marked
the same way, and the Pareto frontier (dominated points faint)."""

from __future__ import annotations

import textwrap
from pathlib import Path

TITLE_WIDTH = 95  # characters per title line at the figure's width and font size


def figure(columns: int = 1):
    """A figure with ``columns`` axes side by side (each its own x scale: rps and users never
    share an axis); ``finish`` gives it its title and legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, columns, figsize=(7.5 * columns**0.5 + 1, 5.2), dpi=110, layout="constrained", squeeze=False
    )
    return fig, list(axes[0])


def finish(fig, title: str) -> None:
    """One legend for the figure, outside the axes below them (it never hides a point), and the
    title rewrapped until it fits the figure's width (a long model name or URL)."""
    handles, labels = [], []
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        columns = 2 if len(labels) > 1 and max(map(len, labels)) <= 45 else 1
        wrapped = [textwrap.fill(label, 90 // columns) for label in labels]
        fig.legend(handles, wrapped, loc="outside lower center", ncols=columns, fontsize=7)
    renderer, width = fig.canvas.get_renderer(), TITLE_WIDTH
    while True:
        shown = fig.suptitle("\n".join(textwrap.fill(line, width) for line in title.splitlines()), fontsize=9)
        if width <= 20 or shown.get_window_extent(renderer).width <= fig.bbox.width * 0.98:
            return
        width = int(width * 0.85)


def mark(ax, xs: list, ys: list, knee_at: int | None, failed: list[bool], label_failed: bool = True) -> None:
    """The knee as a star (and a dotted line at its load), failed steps as red crosses."""
    if knee_at is not None and ys[knee_at] is not None:
        ax.axvline(xs[knee_at], color="green", linestyle=":", linewidth=1)
        ax.scatter([xs[knee_at]], [ys[knee_at]], marker="*", s=220, color="green", zorder=4, label="knee")
    bad = [(x, y) for x, y, f in zip(xs, ys, failed) if f and y is not None]
    if bad:
        ax.scatter(*zip(*bad), marker="x", s=90, color="red", zorder=4, label="failed step" if label_failed else None)


def frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both), in x order."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    best_y, kept = float("-inf"), []
    for i in order:
        if points[i][1] > best_y:
            kept.append(i)
            best_y = points[i][1]
    return sorted(kept, key=lambda i: points[i][0])


def pareto(ax, points: list[dict], label: str, color=None) -> None:
    """``points``: per_user, per_gpu, load_label, failed. The frontier over the sustained points
    as a line, dominated sustained points faint, failed ones as red crosses; each labelled."""
    ok = [p for p in points if not p["failed"]]
    best = [ok[i] for i in frontier([(p["per_user"], p["per_gpu"]) for p in ok])]
    line = ax.plot([p["per_user"] for p in best], [p["per_gpu"] for p in best], marker="o", label=label, color=color)
    color = line[0].get_color()
    faint = [p for p in ok if p not in best]
    if faint:
        ax.scatter([p["per_user"] for p in faint], [p["per_gpu"] for p in faint], color=color, alpha=0.3)
    failed = [p for p in points if p["failed"]]
    if failed:
        ax.scatter(
            [p["per_user"] for p in failed],
            [p["per_gpu"] for p in failed],
            marker="x",
            s=90,
            color="red",
            zorder=4,
            label="failed step",
        )
    for p in points:
        ax.annotate(
            p["load_label"], (p["per_user"], p["per_gpu"]), textcoords="offset points", xytext=(4, 4), fontsize=7
        )


def load_label(value: float, closed: bool) -> str:
    return f"{value:g} users" if closed else f"{value:.2f} rps"


def outside(fig) -> list[str]:
    """The texts and legends that do not fit inside the figure once drawn (a test's check)."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    box = fig.bbox
    artists = [*fig.texts, *fig.legends]
    for ax in fig.axes:
        artists += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend():
            artists.append(ax.get_legend())
    cut = []
    for artist in artists:
        if not artist.get_visible() or (hasattr(artist, "get_text") and not artist.get_text()):
            continue
        extent = artist.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.y0 < box.y0 - 1 or extent.x1 > box.x1 + 1 or extent.y1 > box.y1 + 1:
            cut.append(getattr(artist, "get_text", lambda a=artist: type(a).__name__)())
    return cut


def save_png(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
