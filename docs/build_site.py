"""Build the documentation site (MkDocs Material + mkdocstrings) from the repository.

    .venv/bin/python docs/build_site.py [OUT]        # default OUT: ./site; fails on any warning

The pages are gathered into a temporary folder and built there with ``mkdocs build --strict``:

- the README (home), ``docs/architecture.md``, ``docs/design.md`` (the design contract), ``docs/language.md``
  (the macro language, with ``macros/grammar.lark``), the README's promises about data, the plugin guide
  (``examples/plugin/README.md``), ``CHANGELOG.md``;
- one page per action, generated from the registry (macro signature, menu, docstring, an example line);
- the API reference of the public engine, read from the source by mkdocstrings.

Links from these pages to repository files that are not pages (tests, benchmarks) become code text, so
``--strict`` checks every link between pages.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Repository files that are pages of the site: path in the repository -> page.
PAGES = {"README.md": "index.md", "docs/architecture.md": "architecture.md", "docs/design.md": "design.md",
         "docs/language.md": "language.md", "CHANGELOG.md": "changelog.md",
         "examples/plugin/README.md": "plugins.md"}

#: The public API pages: page -> the objects mkdocstrings documents there.
API = {
    "Actions and the registry": ["damselfly.engine.registry.action", "damselfly.engine.registry.Registry",
                                 "damselfly.engine.plugins"],
    "Data model": ["damselfly.engine.core.data.Volume", "damselfly.engine.core.data.Labels",
                   "damselfly.engine.core.data.Table", "damselfly.engine.core.errors"],
    "Files": ["damselfly.engine.io._files.read_volume", "damselfly.engine.io._files.write_volume",
              "damselfly.engine.io._files.read_labels", "damselfly.engine.io._files.read_table",
              "damselfly.engine.io._files.write_table"],
    "Progress and Stop": ["damselfly.engine.core.progress"],
    "Local thickness": ["damselfly.engine.thickness._exact.local_thickness",
                        "damselfly.engine.thickness._blocks.blockwise_thickness"],
    "Segmentation models": ["damselfly.engine.segmentation._model.Model",
                            "damselfly.engine.segmentation._model_files.save_model",
                            "damselfly.engine.segmentation._model_files.load_model",
                            "damselfly.engine.segmentation._tiling.sliding_window"],
}

#: A placeholder argument per macro type, for the example lines of action pages.
PLACEHOLDER = {"Volume": "raw", "Labels": "seg", "Model": "model", "Table": "table", "Labels | Volume": "seg"}


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def link_text(md: str, src: str) -> str:
    """Rewrite relative links of the page from ``src``: to pages where they are pages, else code text."""
    base = (ROOT / src).parent
    pages = {(ROOT / k).resolve(): v for k, v in PAGES.items()}

    def one(m):
        text, target = m.group(1), m.group(2)
        if re.match(r"[a-z]+:|#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        full = (base / path).resolve()
        if full in pages:
            return f"[{text}]({pages[full]}{'#' + anchor if anchor else ''})"
        if full.suffix in (".png", ".jpg", ".svg") and full.exists():
            return m.group(0)  # images are copied with their folders
        rel = full.relative_to(ROOT) if full.is_relative_to(ROOT) else Path(path)
        return f"{text} (`{rel}`)" if text.strip("`") != str(rel) else f"`{rel}`"

    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", one, md)


def section(md: str, title: str) -> str:
    """One ``## title`` section of a Markdown text, to the next ``##``."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.S | re.M)
    if not m:
        raise SystemExit(f"README.md has no section '## {title}'")
    return f"# {title}\n{m.group(1)}"


def example_line(spec) -> str:
    """A macro line that calls the action: its docstring's example if it has one, else its required
    arguments as placeholders."""
    m = re.search(r"``([a-z_]+ = )?" + spec.name + r"\(.*?\)``", spec.doc or "")
    if m:
        return m.group(0).strip("`")
    args = []
    for p in spec.params:
        if p.required:
            args.append(PLACEHOLDER.get(p.type_name, '"scan.tif"' if p.path_kind else p.name))
    call = f"{spec.name}({', '.join(args)})"
    return f"{spec.result_name} = {call}" if spec.returns_value else call


def action_page(spec) -> str:
    doc = (spec.doc or "").strip()
    return (f"# `{spec.name}`\n\n{spec.summary}\n\n"
            f"Menu: **{spec.category}** › {spec.title}\n\n"
            f"## In a macro\n\n```\n{spec.signature()}\n```\n\nFor example:\n\n```\n{example_line(spec)}\n```\n\n"
            f"## Reference\n\n```text\n{doc}\n```\n")


def gather(src: Path) -> dict:
    """Write the pages into ``src``; return the navigation."""
    from damselfly.engine import BUILTIN

    for repo_path, page in PAGES.items():
        (src / page).write_text(link_text((ROOT / repo_path).read_text(encoding="utf-8"), repo_path),
                                encoding="utf-8")
    for folder in ("docs/images",):
        shutil.copytree(ROOT / folder, src / folder)
    for png in ROOT.joinpath("docs").glob("*.png"):
        (src / "docs").mkdir(exist_ok=True)
        shutil.copy(png, src / "docs" / png.name)
    grammar = (ROOT / "macros" / "grammar.lark").read_text(encoding="utf-8")
    with open(src / "language.md", "a", encoding="utf-8") as f:
        f.write(f"\n## The grammar\n\n`macros/grammar.lark`, as the parser reads it:\n\n```\n{grammar}```\n")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (src / "reliability.md").write_text(link_text(section(readme, "What Damselfly promises about your data"),
                                                  "README.md"), encoding="utf-8")
    (src / "actions").mkdir()
    specs = BUILTIN.all()
    index = ["# Actions\n", "Every action a macro can call, generated from the registry.\n",
             "| action | menu | what it does |", "|---|---|---|"]
    for spec in specs:
        (src / "actions" / f"{spec.name}.md").write_text(action_page(spec), encoding="utf-8")
        index.append(f"| [`{spec.name}`]({spec.name}.md) | {spec.category} | {spec.summary} |")
    (src / "actions" / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    (src / "api").mkdir()
    api_nav = []
    for title, objects in API.items():
        body = f"# {title}\n\n" + "".join(f"::: {o}\n\n" for o in objects)
        (src / "api" / f"{slug(title)}.md").write_text(body, encoding="utf-8")
        api_nav.append({title: f"api/{slug(title)}.md"})
    return [
        {"Home": "index.md"},
        {"The macro language": "language.md"},
        {"Actions": ["actions/index.md"] + [f"actions/{s.name}.md" for s in specs]},
        {"Promises about your data": "reliability.md"},
        {"Plugins": "plugins.md"},
        {"Architecture": "architecture.md"},
        {"Design contract": "design.md"},
        {"API reference": api_nav},
        {"Changelog": "changelog.md"},
    ]


def config(nav, pkg_root: Path) -> str:
    import json

    cfg = {
        "site_name": "Damselfly", "docs_dir": "src", "strict": True,
        "theme": {"name": "material", "features": ["navigation.sections", "search.highlight"]},
        "markdown_extensions": ["tables", "admonition", "toc"],
        "plugins": ["search", {"mkdocstrings": {"handlers": {"python": {
            "paths": [str(pkg_root)],
            "options": {"docstring_style": "numpy", "show_source": False, "show_root_heading": True,
                        "heading_level": 2, "members_order": "source"}}}}}],
        "nav": nav,
    }
    return json.dumps(cfg, indent=1)  # YAML is a superset of JSON


def main(out: str = "site") -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        pkg_root = tmp / "pkg" / "damselfly"  # the installed layout, for mkdocstrings to read the source
        pkg_root.mkdir(parents=True)
        for name in ("engine", "macros", "app"):
            (pkg_root / name).symlink_to(ROOT / name)
        nav = gather(src)
        (tmp / "mkdocs.yml").write_text(config(nav, pkg_root.parent), encoding="utf-8")
        r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(tmp / "mkdocs.yml"),
                            "-d", str(Path(out).resolve())], cwd=tmp)
        return r.returncode


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
