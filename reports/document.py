"""A report document written twice: self-contained HTML (figures base64-embedded, opens offline)
and Markdown for CI comments (figures as relative PNG links, next to the .md file).

Plain string templates: no template engine, no network. The only JavaScript is plotly's, embedded
once when a figure has an interactive version (reports.interactive).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from reports.tables import Table, markdown, to_html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1120px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#555;font-size:.92em} table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .7em;text-align:left} th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums} td.pass{color:#176d2c;font-weight:600}
td.fail{color:#b3261e;font-weight:700;background:#fdecea} code{font-size:.95em}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em} .note{color:#555;font-size:.9em}
.headline{border-left:5px solid #b3261e;background:#fdf3f2;padding:.6em 1em;margin:1em 0}
.headline.ok{border-color:#176d2c;background:#f1f8f2} .headline p{margin:.35em 0}
.headline p:first-child{font-size:1.12em;font-weight:600} .figtools{color:#777;font-size:.85em}
"""


@dataclass
class Figure:
    """A rendered figure: PNG bytes, file name for Markdown, title (alt text) and caption."""

    name: str
    title: str
    caption: str
    png: bytes
    html: str | None = None  # an interactive version for report.html (report.md keeps the PNG)


@dataclass
class Document:
    """Title, a few 'key: value' facts and sections of text, tables and figures, in order."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    parts: list[tuple[str, object]] = field(default_factory=list)

    def callout(self, sentences: list[str], ok: bool) -> None:
        """The headline: a few sentences in a box (red edge when something went wrong)."""
        self.parts.append(("callout", (sentences, ok)))

    def heading(self, text: str) -> None:
        self.parts.append(("h2", text))

    def text(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(self, table: Table) -> None:
        self.parts.append(("table", table))

    def figure(self, fig: Figure) -> None:
        self.parts.append(("figure", fig))

    def write(self, out_dir: Path, stem: str) -> tuple[Path, Path]:
        """Write `stem`.html, `stem`.md and the figures' PNGs into out_dir; returns (html, md)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        for kind, obj in self.parts:
            if kind == "figure":
                assert isinstance(obj, Figure)
                (out_dir / obj.name).write_bytes(obj.png)
        html_path, md_path = out_dir / f"{stem}.html", out_dir / f"{stem}.md"
        html_path.write_text(self.html(), encoding="utf-8")
        md_path.write_text(self.markdown(), encoding="utf-8")
        return html_path, md_path

    def html(self) -> str:
        js = ""
        if any(kind == "figure" and obj.html for kind, obj in self.parts):  # type: ignore[attr-defined]
            from reports.interactive import script

            js = script()
        out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(self.title)}"
               f"</title><style>{_CSS}</style>{js}</head><body><h1>{html.escape(self.title)}</h1>"]
        if self.facts:
            out.append('<p class="meta">' + " · ".join(
                f"<b>{html.escape(k)}</b>: {html.escape(v)}" for k, v in self.facts) + "</p>")
        for kind, obj in self.parts:
            if kind == "h2":
                out.append(f"<h2>{html.escape(str(obj))}</h2>")
            elif kind == "p":
                out.append(f'<p class="note">{html.escape(str(obj))}</p>')
            elif kind == "table":
                out.append(to_html(obj))  # type: ignore[arg-type]
            elif kind == "callout":
                sentences, ok = cast(tuple[list[str], bool], obj)
                out.append(f'<div class="headline{" ok" if ok else ""}">'
                           + "".join(f"<p>{html.escape(x)}</p>" for x in sentences) + "</div>")
            else:
                assert isinstance(obj, Figure)
                out.append(_figure_html(obj))
        out.append("</body></html>\n")
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        if self.facts:
            out += [" · ".join(f"**{k}**: {v}" for k, v in self.facts), ""]
        for kind, obj in self.parts:
            if kind == "h2":
                out += [f"## {obj}", ""]
            elif kind == "p":
                out += [str(obj), ""]
            elif kind == "table":
                out += [markdown(obj), ""]  # type: ignore[arg-type]
            elif kind == "callout":
                sentences, _ = cast(tuple[list[str], bool], obj)
                out += [f"> {'**' + x + '**' if k == 0 else x}" + ("  " if k < len(sentences) - 1 else "")
                        for k, x in enumerate(sentences)] + [""]
            else:
                assert isinstance(obj, Figure)
                out += [f"![{obj.title}]({obj.name})", "", f"*{obj.caption}*", ""]
        return "\n".join(out)


def _figure_html(fig: Figure) -> str:
    caption = f"<figcaption><b>{html.escape(fig.title)}.</b> {html.escape(fig.caption)}"
    if fig.html:
        return (f'<figure id="{html.escape(fig.name)}">{fig.html}{caption} <span class="figtools">Drag to zoom '
                f"(every panel follows), double-click to reset, hover for values.</span></figcaption></figure>")
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure id="{html.escape(fig.name)}"><img alt="{html.escape(fig.title)}" '
            f'title="{html.escape(fig.title)}" src="data:image/png;base64,{data}">{caption}</figcaption></figure>')
