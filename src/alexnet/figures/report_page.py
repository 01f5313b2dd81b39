"""The reproduction report as HTML (one self-contained file, PNG figures base64-embedded) and
as Markdown referencing the PNG files next to it, rendered from a plain context that
`alexnet.evaluation.report.build_report` gathers."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from alexnet.atomic import write_text

Row = tuple[str, tuple | None, tuple | None]  # setting, centre (top-1, top-5) %, ten views


def write_report(ctx: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """report.html and report.md in `out`. `ctx`: "title", "model", "status", "config" (YAML
    text), "rows" and "refs" (lists of `Row`), "lr" ([(epoch index, lr)]), "figures" ({caption:
    PNG path inside `out`}), "setting" (what the paper would have to report a number for).
    Returns (html path, md path)."""
    out = Path(out)
    html_path, md_path = out / "report.html", out / "report.md"
    write_text(html_path, _html(ctx))
    write_text(md_path, _markdown(ctx, out))
    return html_path, md_path


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}%"


def _cells(row: Row) -> list[str]:
    name, centre, ten = row
    c = centre or (None, None)
    t = ten or (None, None)
    return [name, _pct(c[0]), _pct(c[1]), _pct(t[0]), _pct(t[1])]


REFS_HEADING = "Published numbers for this setting (the paper's, or the closest reference)"
HEAD = ["setting", "centre top-1", "centre top-5", "ten-view top-1", "ten-view top-5"]


def _html_table(rows: list[Row]) -> str:
    head = "".join(f"<th>{h}</th>" for h in HEAD)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(rows: list[Row]) -> str:
    """The errors table in Markdown (percentages, – where there is no number)."""
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
         "padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
         "pre{background:#f4f4f4;padding:1em;overflow:auto;max-height:30em}"
         "img{max-width:100%;border:1px solid #ddd}.status{background:#fff8e0;padding:.6em}")


def _html(ctx: dict[str, Any]) -> str:
    esc = html.escape
    refs = (_html_table(ctx["refs"]) if ctx["refs"] else
            f"<p>The paper reports no number for this setting ({esc(ctx['setting'])}).</p>")
    lr = ", ".join(f"epoch {e + 1}: lr {v:g}" for e, v in ctx["lr"]) or "none"
    figs = "".join(f"<figure><figcaption><h3>{esc(name)}</h3></figcaption>"
                   f"<img alt=\"{esc(name)}\" src=\"{_png_data_uri(path)}\"></figure>"
                   for name, path in ctx["figures"].items())
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{esc(ctx['title'])}"
            f"</title><style>{STYLE}</style></head><body><h1>{esc(ctx['title'])}</h1>"
            f"<p>Model: {esc(ctx['model'])}</p><p class=\"status\">{esc(ctx['status'])}</p>"
            f"<h2>Final errors</h2>{_html_table(ctx['rows'])}"
            f"<h2>{REFS_HEADING}</h2>{refs}"
            f"<p>Learning-rate changes: {esc(lr)}</p>"
            f"<h2>Figures</h2>{figs}"
            f"<h2>Resolved config</h2><pre>{esc(ctx['config'])}</pre></body></html>\n")


def _markdown(ctx: dict[str, Any], out: Path) -> str:
    refs = (markdown_table(ctx["refs"]) if ctx["refs"] else
            f"The paper reports no number for this setting ({ctx['setting']}).")
    lr = ", ".join(f"epoch {e + 1}: lr {v:g}" for e, v in ctx["lr"]) or "none"
    figs = "\n\n".join(f"### {name}\n\n![{name}]({Path(path).relative_to(out).as_posix()})"
                       for name, path in ctx["figures"].items())
    return (f"# {ctx['title']}\n\nModel: {ctx['model']}\n\n> {ctx['status']}\n\n"
            f"## Final errors\n\n{markdown_table(ctx['rows'])}\n\n"
            f"## {REFS_HEADING}\n\n{refs}\n\n"
            f"Learning-rate changes: {lr}\n\n## Figures\n\n{figs}\n\n"
            f"## Resolved config\n\n```yaml\n{ctx['config'].rstrip()}\n```\n")
