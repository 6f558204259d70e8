"""The course website's MyST site template: renders Jupyter Book 2's content to static HTML, offline.

`jupyter book build --html` (run in the repository root, configured by myst.yml) parses the README, the
docs and the committed notebooks (never executing them) into MyST's JSON content, serves it on a local
content server and runs this file (template.yml: build.render) with two variables:
    CONTENT_CDN       the content server: /config.json, /content/<slug>.json and the extracted images
    BUILD_DIRECTORY   where the site goes (_build/html)
It writes one flat, self-contained page per document (index.html for the README), so the site works from
any folder or sub-path and from file:// too: a sidebar with the course map, Binder and Colab launch buttons
(peftcourse/colab.py names the repository), the committed outputs (figures with alt text, tables, text),
math as MathML (KaTeX's MathML from MyST, drawn by the browser: no fonts or scripts to fetch), code
highlighted by Pygments, and a search box over every section of every page (search.js, no server needed).

Alt text of a notebook figure (a PNG output): an explicit one in the output's metadata
(`{"image/png": {"alt": "..."}}`) wins; otherwise the takeaway that follows the figure (a markdown cell
starting "Takeaway"), else the text that introduces it (the last paragraph of the markdown cell before
it), else its section heading. After a build, `python book/theme/render.py alt-texts` lists them for review.

An unknown MyST node type stops the build with its name, so nothing in the course is dropped silently.
"""
import html
import importlib.util
import json
import os
import pathlib
import re
import shutil
import sys
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent   # the repository: book/theme/render.py


def load_colab():
    spec = importlib.util.spec_from_file_location("peftcourse_colab", ROOT / "peftcourse" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


colab = load_colab()


class RenderError(Exception):
    pass


# ---------------------------------------------------------------- plain text of nodes (alt text, search)

GREEK = {name: chr(code) for name, code in (
    ("alpha", 945), ("beta", 946), ("gamma", 947), ("delta", 948), ("Delta", 916), ("epsilon", 949),
    ("theta", 952), ("lambda", 955), ("mu", 956), ("pi", 960), ("sigma", 963), ("Sigma", 931), ("phi", 966))}
TEX_SYMBOLS = {"times": "×", "cdot": "·", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "approx": "≈", "to": "→",
               "rightarrow": "→", "in": "∈", "sqrt": "√", "ll": "≪", "pm": "±", "neq": "≠", "infty": "∞", **GREEK}


def tex_text(tex):
    """Math source as a screen reader can read it: \\mathbf{W}_0 -> W_0, \\alpha -> α, no braces or backslashes."""
    text = re.sub(r"\\(?:mathbf|mathrm|mathit|mathcal|text|textbf|operatorname|boldsymbol|bm)\s*\{([^{}]*)\}", r"\1", tex)
    text = re.sub(r"\\([A-Za-z]+)", lambda m: TEX_SYMBOLS.get(m.group(1), m.group(1)), text)
    text = re.sub(r"\\[,;:! ]", " ", text)
    return squash(text.replace("{", "").replace("}", "").replace("\\", ""))


def plain(node):
    """The readable text of a node: text, code and math source, without markup."""
    t = node.get("type")
    if t in ("text", "inlineCode"):
        return node.get("value", "")
    if t == "inlineMath":
        return tex_text(node.get("value", ""))
    if t in ("code", "math", "comment", "html", "output", "outputs"):
        return ""
    if t == "break":
        return " "
    text = "".join(plain(c) for c in node.get("children", []))
    return text + " " if t in ("paragraph", "listItem", "tableCell", "heading") else text


def squash(text):
    return re.sub(r"\s+", " ", text).strip()


def first_sentences(text, limit=320):
    """The first sentence(s) of `text` within `limit` characters, cut at a sentence end where possible."""
    text = squash(text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    ends = [m.end() for m in re.finditer(r"[.!?:;](\s|$)", cut)]
    if ends and ends[-1] > limit // 3:
        return cut[:ends[-1]].strip()
    return cut.rsplit(" ", 1)[0] + " …"


# ---------------------------------------------------------------- alt text of notebook figures

def image_outputs(block):
    """The image outputs of a code block: [(output node, mime type)]."""
    found = []

    def walk(n):
        if n.get("type") == "output":
            data = (n.get("jupyter_data") or {}).get("data") or {}
            for mime in data:
                if mime.startswith("image/"):
                    found.append((n, mime))
                    break
        for c in n.get("children", []):
            walk(c)
    walk(block)
    return found


def block_paragraphs(block):
    return [squash(plain(c)) for c in block.get("children", []) if c.get("type") in ("paragraph", "list", "blockquote")]


def derive_alt(blocks, index, heading):
    """Alt text of the figure in blocks[index] from its neighbours (see the module's docstring)."""
    for nxt in blocks[index + 1:index + 3]:
        if nxt.get("kind") == "notebook-code":
            if image_outputs(nxt):
                break   # the next figure's own takeaway
            continue
        paragraphs = [p for p in block_paragraphs(nxt) if p]
        if paragraphs and paragraphs[0].lower().startswith("takeaway"):
            text = re.sub(r"^takeaway\s*:?\s*", "", paragraphs[0], flags=re.I)
            return "Figure. Takeaway: " + first_sentences(text)
        break
    for prev in reversed(blocks[max(0, index - 2):index]):
        if prev.get("kind") == "notebook-code":
            continue
        paragraphs = [p for p in block_paragraphs(prev) if p]
        if paragraphs and not paragraphs[0].lower().startswith("takeaway"):   # a takeaway is the figure before's
            return "Figure: " + first_sentences(paragraphs[-1])
        break
    if heading:
        return f"Figure in the section “{heading}”"
    return ""


def explicit_alt(output, mime):
    meta = (output.get("jupyter_data") or {}).get("metadata") or {}
    alt = (meta.get(mime) or {}).get("alt") if isinstance(meta.get(mime), dict) else None
    return squash(alt) if isinstance(alt, str) and alt.strip() else None


def figure_alt_texts(page):
    """{output key: alt text} for every image output of a page's content (MyST JSON)."""
    blocks = [b for b in page["mdast"].get("children", []) if b.get("type") == "block"]
    texts, heading = {}, ""
    for i, block in enumerate(blocks):
        for child in block.get("children", []):
            if child.get("type") == "heading":
                heading = squash(plain(child))
        for output, mime in image_outputs(block):
            alt = explicit_alt(output, mime) or derive_alt(blocks, i, heading)
            if not alt:
                raise RenderError(f"{page.get('location')}: a figure has no alt text and no text around it to take "
                                  "it from: give it one in the output's metadata ({'image/png': {'alt': ...}})")
            texts[output["key"]] = alt
    return texts


# ---------------------------------------------------------------- HTML of the MyST tree

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def esc(text):
    return html.escape(str(text), quote=True)


try:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound
except ImportError:   # plain code blocks then
    highlight = None


def code_html(value, lang):
    if highlight is not None and lang:
        try:
            lexer = get_lexer_by_name(lang)
        except ClassNotFound:
            lexer = None
        if lexer is not None:
            return highlight(value, lexer, HtmlFormatter(nowrap=True))
    return esc(value)


def is_remote_badge(node):
    source = node.get("urlSource", "") or node.get("url", "")
    return node.get("type") == "image" and source.startswith(("http://", "https://")) and "badge" in source


def is_badge_line(paragraph):
    """A paragraph of nothing but linked remote badge images (white space between them)."""
    parts = [c for c in paragraph.get("children", []) if not (c.get("type") == "text" and not c.get("value", "").strip())]
    return bool(parts) and all(c.get("type") == "link" and len(c.get("children", [])) == 1
                               and is_remote_badge(c["children"][0]) for c in parts)


class Page:
    """Renders one document; collects what the site needs from it (assets, search sections)."""

    def __init__(self, site, slug, content):
        self.site, self.slug, self.content = site, slug, content
        self.alt = figure_alt_texts(content) if content.get("kind") == "Notebook" else {}
        self.assets = set()           # paths on the content server to copy into build/
        self.sections = []            # (anchor, heading, [text]) for search
        self.footnotes = []

    # links between pages: /slug -> slug.html (the site is flat)
    def href(self, url, anchor=None):
        if url is None:
            return "#"
        if url.startswith("/") and not url.startswith("//"):
            path, _, frag = url.partition("#")
            slug = path.strip("/")
            if slug in self.site.slugs:
                target = self.site.file_of(slug)
                frag = anchor or frag
                return target + (f"#{frag}" if frag else "")
            if path.startswith("/build/") or re.fullmatch(r"/[^/]+\.[A-Za-z0-9]+", path):
                self.assets.add(path)
                return "build/" + path.rsplit("/", 1)[-1]
            raise RenderError(f"{self.content.get('location')}: link to {url!r} leads to no page of the site")
        return url

    def asset(self, path):
        if path.startswith(("http://", "https://", "data:")):
            return path
        self.assets.add(path)
        return "build/" + path.rsplit("/", 1)[-1]

    def children(self, node):
        return "".join(self.render(c) for c in node.get("children", []))

    def render(self, node):
        t = node.get("type")
        method = getattr(self, "r_" + t, None) if t else None
        if method is None:
            raise RenderError(f"{self.content.get('location')}: MyST node type {t!r} has no HTML here "
                              f"(book/theme/render.py); add a rule for it")
        return method(node)

    # -- structure
    def r_root(self, n):
        return self.children(n)

    def r_block(self, n):
        kind = n.get("kind") or "content"
        ident = n.get("html_id") or n.get("identifier")
        attr = f' id="{esc(ident)}"' if ident else ""
        cls = "cell code-cell" if kind == "notebook-code" else "cell"
        return f'<div class="{cls}"{attr}>{self.children(n)}</div>\n'

    def r_heading(self, n):
        depth = min(6, max(2, n.get("depth", 2) + 0))   # the page title is the one <h1>
        ident = n.get("html_id") or n.get("identifier") or ""
        text = squash(plain(n))
        self.sections.append([ident, text, []])
        return (f'<h{depth} id="{esc(ident)}">{self.children(n)}'
                f'<a class="anchor" href="#{esc(ident)}" aria-label="link to this section">¶</a></h{depth}>\n')

    def r_paragraph(self, n):
        if is_badge_line(n):
            return ""   # the Binder / Colab badges of a notebook or the README: the page header has the buttons
        self.index_text(plain(n))
        return f"<p>{self.children(n)}</p>\n"

    def index_text(self, text):
        if not self.sections:
            self.sections.append(["", "", []])
        self.sections[-1][2].append(squash(text))

    def r_text(self, n):
        return esc(n.get("value", ""))

    def r_strong(self, n):
        return f"<strong>{self.children(n)}</strong>"

    def r_emphasis(self, n):
        return f"<em>{self.children(n)}</em>"

    def r_underline(self, n):
        return f"<u>{self.children(n)}</u>"

    def r_delete(self, n):
        return f"<del>{self.children(n)}</del>"

    def r_superscript(self, n):
        return f"<sup>{self.children(n)}</sup>"

    def r_subscript(self, n):
        return f"<sub>{self.children(n)}</sub>"

    def r_smallcaps(self, n):
        return f'<span style="font-variant:small-caps">{self.children(n)}</span>'

    def r_span(self, n):
        return f"<span>{self.children(n)}</span>"

    def r_div(self, n):
        return f"<div>{self.children(n)}</div>"

    def r_abbreviation(self, n):
        return f'<abbr title="{esc(n.get("title", ""))}">{self.children(n)}</abbr>'

    def r_break(self, n):
        return "<br>"

    def r_thematicBreak(self, n):
        return "<hr>\n"

    def r_comment(self, n):
        return ""

    def r_blockquote(self, n):
        return f"<blockquote>{self.children(n)}</blockquote>\n"

    def r_list(self, n):
        if n.get("ordered"):
            start = n.get("start", 1)
            return f'<ol start="{int(start)}">{self.children(n)}</ol>\n'
        return f"<ul>{self.children(n)}</ul>\n"

    def r_listItem(self, n):
        self.index_text(plain(n))
        return f"<li>{self.children(n)}</li>\n"

    def r_definitionList(self, n):
        return f"<dl>{self.children(n)}</dl>\n"

    def r_definitionTerm(self, n):
        return f"<dt>{self.children(n)}</dt>"

    def r_definitionDescription(self, n):
        return f"<dd>{self.children(n)}</dd>"

    def r_table(self, n):
        return f'<div class="table-wrap"><table>{self.children(n)}</table></div>\n'

    def r_tableRow(self, n):
        self.index_text(" | ".join(plain(c) for c in n.get("children", [])))
        return f"<tr>{self.children(n)}</tr>\n"

    def r_tableCell(self, n):
        tag = "th" if n.get("header") else "td"
        align = n.get("align")
        style = f' style="text-align:{esc(align)}"' if align in ("left", "right", "center") else ""
        return f"<{tag}{style}>{self.children(n)}</{tag}>"

    def r_admonition(self, n):
        kind = esc(n.get("kind", "note"))
        return f'<aside class="admonition {kind}">{self.children(n)}</aside>\n'

    def r_admonitionTitle(self, n):
        return f'<p class="admonition-title">{self.children(n)}</p>'

    def r_container(self, n):
        return f"<figure>{self.children(n)}</figure>\n"

    def r_caption(self, n):
        return f"<figcaption>{self.children(n)}</figcaption>"

    def r_legend(self, n):
        return f'<div class="legend">{self.children(n)}</div>'

    def r_footnoteReference(self, n):
        ident = esc(n.get("identifier", ""))
        return f'<sup><a href="#fn-{ident}">{esc(n.get("enumerator", n.get("label", "")))}</a></sup>'

    def r_footnoteDefinition(self, n):
        ident = esc(n.get("identifier", ""))
        return f'<div class="footnote" id="fn-{ident}">{esc(n.get("enumerator", ""))}. {self.children(n)}</div>'

    def r_html(self, n):
        return n.get("value", "")

    # -- code and math
    def r_inlineCode(self, n):
        return f"<code>{esc(n.get('value', ''))}</code>"

    def r_code(self, n):
        lang = n.get("lang") or ""
        cls = f' class="language-{esc(lang)}"' if lang else ""
        return f'<pre class="source"><code{cls}>{code_html(n.get("value", ""), lang)}</code></pre>\n'

    def math_html(self, n, display):
        rendered = n.get("html")
        if not rendered or "katex-error" in rendered:
            self.site.problems.append(f"{self.content.get('location')}: math did not render: {n.get('value')!r}")
            return f'<code class="math-error">{esc(n.get("value", ""))}</code>'
        return rendered

    def r_inlineMath(self, n):
        return self.math_html(n, False)

    def r_math(self, n):
        ident = n.get("html_id")
        attr = f' id="{esc(ident)}"' if ident else ""
        return f'<div class="math-display"{attr}>{self.math_html(n, True)}</div>\n'

    # -- links and images
    def r_link(self, n):
        url = n.get("url", "")
        href = self.href(url) if n.get("internal") or url.startswith("/") else url
        ext = "" if not href.startswith(("http://", "https://")) else ' rel="noopener"'
        return f'<a href="{esc(href)}"{ext}>{self.children(n)}</a>'

    def r_crossReference(self, n):
        url = n.get("url")
        ident = n.get("html_id") or n.get("identifier")
        href = self.href(url, ident) if url else f"#{ident}"
        body = self.children(n) or esc(n.get("label", ident))
        return f'<a href="{esc(href)}">{body}</a>'

    def r_image(self, n):
        alt = n.get("alt") or n.get("title") or ""
        src = n.get("url", "")
        source = n.get("urlSource", "")
        if src in ("", "/undefined") or is_remote_badge(n):
            # a remote badge (README, notebook headers): drawn as a labelled button, nothing fetched
            return f'<span class="badge">{esc(alt or "link")}</span>'
        if not alt:
            raise RenderError(f"{self.content.get('location')}: image {source or src!r} has no alt text")
        return f'<img src="{esc(self.asset(src))}" alt="{esc(alt)}" loading="lazy">'

    # -- notebook outputs
    def r_outputs(self, n):
        inner = self.children(n)
        return f'<div class="outputs">{inner}</div>\n' if inner else ""

    def r_output(self, n):
        data = n.get("jupyter_data") or {}
        kind = data.get("output_type")
        if kind == "stream":
            cls = "stderr" if data.get("name") == "stderr" else "stdout"
            return f'<pre class="output {cls}">{esc(ANSI.sub("", data.get("text", "")))}</pre>'
        if kind == "error":
            trace = ANSI.sub("", "\n".join(data.get("traceback", [])))
            return f'<pre class="output error">{esc(trace)}</pre>'
        bundle = data.get("data") or {}
        for mime in bundle:
            if mime.startswith("image/"):
                item = bundle[mime]
                alt = self.alt.get(n.get("key"))
                if not alt:
                    raise RenderError(f"{self.content.get('location')}: a figure output has no alt text")
                self.index_text(alt)
                src = self.asset(item["path"])
                return f'<figure class="output figure"><img src="{esc(src)}" alt="{esc(alt)}" loading="lazy"></figure>'
        if "text/html" in bundle:
            return f'<div class="output html output_html">{bundle["text/html"].get("content", "")}</div>'
        if "text/markdown" in bundle:
            return f'<pre class="output">{esc(bundle["text/markdown"].get("content", ""))}</pre>'
        if "text/latex" in bundle:
            return f'<pre class="output">{esc(bundle["text/latex"].get("content", ""))}</pre>'
        if "text/plain" in bundle:
            text = bundle["text/plain"].get("content", "")
            widget = "application/vnd.jupyter.widget-view+json" in bundle
            cls = "output widget-fallback" if widget else "output"
            return f'<pre class="{cls}">{esc(ANSI.sub("", text))}</pre>'
        if not bundle:
            return ""
        raise RenderError(f"{self.content.get('location')}: an output has none of the types the site shows: "
                          f"{sorted(bundle)}")

    # -- catch-alls that MyST may leave for roles/directives it could not resolve
    def r_mystRole(self, n):
        return self.children(n) or esc(n.get("value", ""))

    def r_mystDirective(self, n):
        return self.children(n)


# ---------------------------------------------------------------- the site

CSS_FILE = "site.css"
JS_FILE = "search.js"


class Site:
    def __init__(self, cdn, out):
        self.cdn, self.out = cdn.rstrip("/"), pathlib.Path(out)
        self.config = self.get_json("/config.json")
        projects = self.config.get("projects") or []
        if len(projects) != 1:
            raise RenderError(f"the site has {len(projects)} projects; myst.yml defines one")
        self.project = projects[0]
        self.index = self.project["index"]
        self.pages = [p for p in self.project.get("pages", [])]
        self.slugs = {self.index} | {p["slug"] for p in self.pages if p.get("slug")}
        self.problems = []

    def get(self, path):
        url = self.cdn + urllib.parse.quote(path)
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()

    def get_json(self, path):
        return json.loads(self.get(path))

    def file_of(self, slug):
        return "index.html" if slug == self.index else f"{slug}.html"

    def launch_buttons(self, location):
        path = location.lstrip("/")
        if path.endswith(".ipynb"):
            colab_target, colab_label = path, "Open in Colab"
        else:
            colab_target, colab_label = "notebooks/00_start_here.ipynb", "Open the course in Colab"
        return (f'<nav class="launch" aria-label="launch">'
                f'<a class="button binder" href="{esc(colab.binder_url(path))}" rel="noopener">Launch on Binder</a>'
                f'<a class="button colab" href="{esc(colab.colab_url(colab_target))}" rel="noopener">{colab_label}</a>'
                f'<a class="button source" href="{esc(colab.repository_url())}/blob/{esc(colab.BRANCH)}/{esc(path)}" '
                f'rel="noopener">Source</a></nav>')

    def sidebar(self, current):
        items = [f'<li class="level-1{" current" if current == self.index else ""}">'
                 f'<a href="index.html">Course map</a></li>']
        for p in self.pages:
            level = p.get("level", 1)
            if not p.get("slug"):
                items.append(f'<li class="part level-{level}">{esc(p.get("title", ""))}</li>')
                continue
            cur = ' current" aria-current="page' if p["slug"] == current else ""
            items.append(f'<li class="level-{level}{cur}"><a href="{self.file_of(p["slug"])}">'
                         f'{esc(p.get("title", p["slug"]))}</a></li>')
        return "\n".join(items)

    def neighbours(self, slug):
        order = [self.index] + [p["slug"] for p in self.pages if p.get("slug")]
        titles = {p["slug"]: p.get("title", p["slug"]) for p in self.pages if p.get("slug")}
        titles[self.index] = "Course map"
        i = order.index(slug)
        prev = (order[i - 1], titles[order[i - 1]]) if i > 0 else None
        nxt = (order[i + 1], titles[order[i + 1]]) if i + 1 < len(order) else None
        return prev, nxt

    def page_html(self, slug, content, body):
        fm = content.get("frontmatter", {})
        title = fm.get("title") or slug
        prev, nxt = self.neighbours(slug)
        pager = '<nav class="pager" aria-label="previous and next page">'
        if prev:
            pager += f'<a class="prev" href="{self.file_of(prev[0])}">← {esc(prev[1])}</a>'
        if nxt:
            pager += f'<a class="next" href="{self.file_of(nxt[0])}">{esc(nxt[1])} →</a>'
        pager += "</nav>"
        site_title = self.config.get("title") or "course"
        downloads = "".join(f'<a class="download" href="build/{esc(e["url"].rsplit("/", 1)[-1])}" '
                            f'download="{esc(e.get("filename", ""))}">Download {esc(e.get("filename", ""))}</a>'
                            for e in fm.get("exports", []) if e.get("url"))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · {esc(site_title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{CSS_FILE}">
<script defer src="search-index.js"></script>
<script defer src="{JS_FILE}"></script>
</head>
<body>
<a class="skip" href="#content">Skip to the content</a>
<aside class="sidebar">
<p class="site-title"><a href="index.html">{esc(site_title)}</a></p>
<form class="search" role="search" onsubmit="return false">
<label for="search-box">Search the course</label>
<input id="search-box" type="search" placeholder="Search: LoRA rank, NF4, …" autocomplete="off">
</form>
<nav aria-label="course map"><ul class="toc">
{self.sidebar(slug)}
</ul></nav>
</aside>
<main id="content">
<div id="search-results" hidden></div>
<header class="page-header">
<h1>{esc(title)}</h1>
{self.launch_buttons(content.get("location", ""))}
{downloads}
</header>
<article>
{body}
</article>
{pager}
</main>
</body>
</html>
"""

    def build(self):
        if self.out.exists():
            shutil.rmtree(self.out)
        (self.out / "build").mkdir(parents=True)
        assets, search = set(), []
        for slug in [self.index] + [p["slug"] for p in self.pages if p.get("slug")]:
            content = self.get_json(f"/content/{slug}.json")
            page = Page(self, slug, content)
            body = page.render(content["mdast"])
            for e in content.get("frontmatter", {}).get("exports", []):
                if e.get("url"):
                    page.assets.add(e["url"])
            assets |= page.assets
            (self.out / self.file_of(slug)).write_text(self.page_html(slug, content, body), encoding="utf-8")
            title = content.get("frontmatter", {}).get("title") or slug
            for anchor, heading, texts in page.sections:
                text = " ".join(t for t in texts if t)
                if heading or text:
                    search.append({"page": title, "heading": heading,
                                   "url": self.file_of(slug) + (f"#{anchor}" if anchor else ""), "text": text})
        for path in sorted(assets):
            (self.out / "build" / path.rsplit("/", 1)[-1]).write_bytes(self.get(path))
        (self.out / "search-index.js").write_text(
            "window.SEARCH_INDEX = " + json.dumps(search, ensure_ascii=False) + ";\n", encoding="utf-8")
        shutil.copy(HERE / CSS_FILE, self.out / CSS_FILE)
        shutil.copy(HERE / JS_FILE, self.out / JS_FILE)
        if highlight is not None:
            with open(self.out / CSS_FILE, "a", encoding="utf-8") as f:
                f.write("\n/* code highlighting (Pygments) */\n" + HtmlFormatter().get_style_defs(".source code"))
        (self.out / ".nojekyll").write_text("")
        if self.problems:
            raise RenderError("\n".join(self.problems))
        return len(search)


def list_alt_texts(content_dir):
    """Print every notebook figure's alt text, from a build's _build/site/content, for review."""
    pages = [json.loads(p.read_text(encoding="utf-8")) for p in pathlib.Path(content_dir).glob("*.json")]
    for page in sorted((p for p in pages if p.get("kind") == "Notebook"), key=lambda p: p["location"]):
        print(page["location"])
        for alt in figure_alt_texts(page).values():
            print("  -", alt)


def main():
    if sys.argv[1:2] == ["alt-texts"]:
        list_alt_texts(sys.argv[2] if len(sys.argv) > 2 else "_build/site/content")
        return
    try:
        cdn, out = os.environ["CONTENT_CDN"], os.environ["BUILD_DIRECTORY"]
    except KeyError as e:
        sys.exit(f"render.py is run by `jupyter book build --html` (myst.yml's site template), which sets {e}")
    try:
        sections = Site(cdn, out).build()
    except RenderError as e:
        print(f"the site was not built: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote the site to {out} ({sections} searchable sections)")


if __name__ == "__main__":
    main()
