"""A tiny document model rendered both as Markdown and as a self-contained HTML page.

The report is written once as a list of blocks (headings, paragraphs, tables, images,
lists); :meth:`Document.markdown` links the PNGs beside it, :meth:`Document.html`
embeds them as base64 data URIs so the page opens from anywhere with no server.
Inline markup in text: ``**bold**`` and ```code```.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #eee; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; }
pre { background: #f4f4f4; padding: .8em; overflow-x: auto; }
.verdict li { font-weight: 600; }
"""

_NUMBER = re.compile(r"^[-+]?[\d,.]+(e[-+]?\d+)?\s*(%|x|s)?$")


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def items(self, items: Sequence[str], css: str = "") -> None:
        self.blocks.append(("list", (list(items), css)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [[_cell(c) for c in r] for r in rows])))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("image", (Path(path), alt)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    # -- Markdown -------------------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                out += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                out += [value, ""]
            elif kind == "list":
                out += [f"- {item}" for item in value[0]] + [""]
            elif kind == "table":
                header, rows = value
                out.append("| " + " | ".join(header) + " |")
                out.append(
                    "|" + "|".join("---:" if _numeric_column(rows, i) else "---" for i in range(len(header))) + "|"
                )
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "image":
                path, alt = value
                out += [f"![{alt}]({path.name})", ""]
            elif kind == "code":
                out += ["```", value, "```", ""]
        return "\n".join(out)

    # -- HTML -----------------------------------------------------------------------------
    def html(self) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                body.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline(value)}</p>")
            elif kind == "list":
                items, css = value
                cls = f' class="{css}"' if css else ""
                body.append(f"<ul{cls}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{_inline(h)}</th>" for h in header)
                lines = []
                for r in rows:
                    cells = "".join(
                        f'<td class="num">{_inline(c)}</td>' if _NUMBER.match(c) else f"<td>{_inline(c)}</td>"
                        for c in r
                    )
                    lines.append(f"<tr>{cells}</tr>")
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>")
            elif kind == "image":
                path, alt = value
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{_inline(alt)}</figcaption></figure>"
                )
            elif kind == "code":
                body.append(f"<pre><code>{html.escape(value)}</code></pre>")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.3g}" if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3) else f"{value:.3f}"
    return str(value)


def _numeric_column(rows: list[list[str]], i: int) -> bool:
    values = [r[i] for r in rows if r[i] != "-"]
    return bool(values) and all(_NUMBER.match(v) for v in values)


def _inline(text: str) -> str:
    escaped = html.escape(str(text))
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)
