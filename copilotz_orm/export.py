"""Rendering a walked subgraph as Mermaid, Graphviz DOT, JSON, or a self-contained HTML page.

Pure functions over a :class:`~copilotz_orm.schemas.Traversal`: no I/O, no network (the HTML page
draws an inline SVG and loads nothing).
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict

from .schemas import Traversal

FORMATS = ("mermaid", "dot", "json", "html")
_PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
            "#9c755f", "#bab0ac"]


def _label(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


CAPPED = "capped by max_nodes: more nodes are within reach than are shown"


def to_mermaid(walk: Traversal) -> str:
    index = {n.node.id: f"n{i}" for i, n in enumerate(walk.nodes)}
    lines = ["graph LR"] + ([f"  %% {CAPPED}"] if walk.truncated else [])
    for n in walk.nodes:
        label = _label(f"{n.node.name} ({n.node.type})").replace('"', "#quot;")
        lines.append(f'  {index[n.node.id]}["{label}"]')
    for e in walk.edges:
        if e.source_id in index and e.target_id in index:
            kind = e.type.replace("|", "/")
            lines.append(f"  {index[e.source_id]} -->|{kind}| {index[e.target_id]}")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def to_dot(walk: Traversal) -> str:
    lines = ["digraph subgraph_export {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    if walk.truncated:
        lines.insert(1, f"  // {CAPPED}")
    for n in walk.nodes:
        lines.append(f"  {_dot_string(n.node.id)} [label={_dot_string(_label(n.node.name))}, "
                     f"tooltip={_dot_string(n.node.type)}];")
    for e in walk.edges:
        lines.append(f"  {_dot_string(e.source_id)} -> {_dot_string(e.target_id)} [label={_dot_string(e.type)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json(walk: Traversal) -> str:
    return walk.model_dump_json(indent=2) + "\n"


def _layout(walk: Traversal, size: float) -> dict[str, tuple[float, float]]:
    """Concentric rings by depth: the start in the middle, each level one ring further out, and
    each node placed near the angle of the nodes it was reached from (so edges stay short)."""
    rings: dict[int, list[str]] = defaultdict(list)
    for n in walk.nodes:
        rings[n.depth].append(n.node.id)
    depth_of = {n.node.id: n.depth for n in walk.nodes}
    parents: dict[str, list[str]] = defaultdict(list)
    for e in walk.edges:
        for a, b in ((e.source_id, e.target_id), (e.target_id, e.source_id)):
            if a in depth_of and b in depth_of and depth_of[a] == depth_of[b] - 1:
                parents[b].append(a)
    levels = max(rings) if rings else 0
    step = (size / 2 - 60) / max(levels, 1)
    centre = size / 2
    angle: dict[str, float] = {}
    positions = {}
    for depth in sorted(rings):
        ids = rings[depth]
        if depth == 0 and len(ids) == 1:
            angle[ids[0]] = 0.0
            positions[ids[0]] = (centre, centre)
            continue
        if depth > 0:
            def parent_angle(node_id: str) -> float:
                seen = [angle[p] for p in parents[node_id] if p in angle]
                return sum(seen) / len(seen) if seen else 0.0
            ids = sorted(ids, key=parent_angle)
        radius = step * depth if depth else step * 0.35
        for i, node_id in enumerate(ids):
            angle[node_id] = 2 * math.pi * i / len(ids)
            positions[node_id] = (centre + radius * math.cos(angle[node_id]),
                                  centre + radius * math.sin(angle[node_id]))
    return positions


def to_html(walk: Traversal, title: str = "copilotz-orm subgraph") -> str:
    size = 900.0 if len(walk.nodes) < 200 else 1400.0
    pos = _layout(walk, size)
    types = sorted({n.node.type for n in walk.nodes})
    colour = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(types)}
    esc = html.escape
    parts = []
    for e in walk.edges:
        if e.source_id in pos and e.target_id in pos:
            (x1, y1), (x2, y2) = pos[e.source_id], pos[e.target_id]
            parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                         f'stroke="#888" stroke-width="1" stroke-opacity="0.5" marker-end="url(#arrow)">'
                         f'<title>{esc(e.type)}</title></line>')
    show_labels = len(walk.nodes) <= 80
    for n in walk.nodes:
        x, y = pos[n.node.id]
        radius = 10 if n.depth == 0 else 6
        tip = esc(f"{n.node.name}\n{n.node.type} · depth {n.depth}\n{n.node.id}")
        parts.append(f'<g class="node"><circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
                     f'fill="{colour[n.node.type]}" stroke="#fff" stroke-width="1.5"><title>{tip}</title></circle>')
        if show_labels or n.depth == 0:
            parts.append(f'<text x="{x + radius + 3:.1f}" y="{y + 4:.1f}" font-size="11" fill="#333">'
                         f'{esc(_label(n.node.name, 28))}</text>')
        parts.append("</g>")
    legend = "".join(f'<span><i style="background:{colour[t]}"></i>{esc(t)}</span>' for t in types)
    data = esc(json.dumps({"nodes": len(walk.nodes), "edges": len(walk.edges), "truncated": walk.truncated}))
    capped = f" <strong>{esc(CAPPED[0].upper() + CAPPED[1:])}.</strong>" if walk.truncated else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5rem; color: #222; }}
svg {{ border: 1px solid #ddd; border-radius: 8px; background: #fcfcfc; max-width: 100%; height: auto; }}
.node:hover circle {{ stroke: #000; }}
text {{ font-size: 11px; fill: #333; pointer-events: none; }}
.legend span {{ margin-right: 1rem; }} .legend i {{ display: inline-block; width: 10px; height: 10px;
  border-radius: 50%; margin-right: 4px; vertical-align: middle; }}
</style></head>
<body data-counts="{data}">
<h1>{esc(title)}</h1>
<p>{len(walk.nodes)} nodes, {len(walk.edges)} edges.{capped} Rings are depths from the start; hover for details.</p>
<p class="legend">{legend}</p>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size:.0f} {size:.0f}" width="{size:.0f}" height="{size:.0f}">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="16" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
<path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>
{''.join(parts)}
</svg></body></html>
"""


def title(walk: Traversal, depth: int, direction: str) -> str:
    start = walk.nodes[0].node
    return f"{start.name} ({start.type}): {depth} step{'' if depth == 1 else 's'} {direction}"


def render(walk: Traversal, fmt: str, title: str = "copilotz-orm subgraph") -> str:
    if fmt == "mermaid":
        return to_mermaid(walk)
    if fmt == "dot":
        return to_dot(walk)
    if fmt == "json":
        return to_json(walk)
    if fmt == "html":
        return to_html(walk, title)
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
