"""The ``damselfly`` command line::

    damselfly run MACRO [--set k=v]... [--out DIR] [--batch GLOB [--param scan]] [--jobs N | --cluster ADDRESS]
                        [--device auto|cpu|cuda] [--threads N] [--dry-run] [--resume] [--no-overwrite]
    damselfly check MACRO... [--set k=v]...
    damselfly fmt MACRO... [--check | --write]
    damselfly actions [NAME]
    damselfly demo [--out DIR] [--size N] [--seed S] [--epochs E] [--device D]
    damselfly app [FILE...]

Exit status: 0 on success, 1 on any error (a bad macro, a failed run, a batch with a failed scan),
2 on a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from damselfly.engine.core.errors import DamselflyError
from damselfly.engine.core.progress import Reporter

from .checker import check
from .console import TextProgress, print_statement
from .diagnostics import MacroError
from .formatter import format_macro
from .parser import parse_file


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def cmd_check(args) -> int:
    from .runner import parse_overrides

    overrides = parse_overrides(args.set)
    bad = 0
    for path in args.macros:
        try:
            macro = parse_file(path)
            mine = overrides
            if len(args.macros) > 1:  # several macros: each takes the --set values it declares
                mine = {k: v for k, v in overrides.items() if k in {p.name for p in macro.params()}}
            res = check(macro, overrides=mine)
        except DamselflyError as e:  # each file on its own: one bad file does not stop the others
            _err(str(e) if isinstance(e, MacroError) else f"{path}: error: {e}")
            bad += 1
            continue
        if res.ok:
            for d in res.diagnostics:  # warnings: the macro runs, but probably not as meant
                _err(d.format())
            print(f"{path}: ok" + (f" ({len(res.diagnostics)} warning(s))" if res.diagnostics else ""))
        else:
            _err("\n".join(d.format() for d in res.diagnostics))
            bad += 1
    return 1 if bad else 0


def cmd_fmt(args) -> int:
    status = 0
    for path in args.macros:
        try:
            macro = parse_file(path)
        except MacroError as e:
            _err(str(e))
            status = 1
            continue
        text = format_macro(macro)
        if args.check:
            if text != macro.source:
                _err(f"{path}: not in canonical form (run: damselfly fmt --write {path})")
                status = 1
        elif args.write:
            if text != macro.source:
                from damselfly.engine.io._files import write_text

                write_text(Path(path), text)
                print(f"formatted {path}")
        else:
            sys.stdout.write(text)
    return status


def cmd_actions(args) -> int:
    from damselfly.engine.builtin import all_actions, get_action

    if args.name:
        try:
            spec = get_action(args.name)
        except DamselflyError as e:
            _err(f"error: {e}")
            return 1
        print(spec.signature())
        print()
        print(textwrap.indent(spec.doc, "    "))
        return 0
    for spec in all_actions():
        print(spec.signature())
        if spec.summary:
            print(textwrap.indent(textwrap.fill(spec.summary, 96), "    "))
    return 0


def cmd_run(args) -> int:
    from .batch import run_batch
    from .runner import RunFailed, parse_overrides, run_file

    overrides = parse_overrides(args.set)
    if args.batch:
        def on_item(r):
            mark = {"ok": "ok", "skipped": "skipped (done before)", "checked": "checked"}.get(r.status, r.status.upper())
            print(f"  {mark:8s} {r.item}  ({r.seconds:.1f}s)", flush=True)

        print(f"batch: {args.macro} over {args.batch!r}" + (" (dry run: nothing computed)" if args.dry_run else ""),
              flush=True)
        if args.dry_run:
            from .batch import check_batch

            results = check_batch(args.macro, args.batch, args.param, overrides, args.out,
                                  allow_outside=args.allow_outside_out)
            for r in results:
                on_item(r)
            bad = [r for r in results if r.status != "checked"]
            for r in bad:
                print(f"FAILED {r.item}:\n    " + "\n    ".join((r.error or "").splitlines()[:4]), file=sys.stderr)
            print(f"\n{len(results) - len(bad)} of {len(results)} scans pass the check; nothing was computed or written")
            return 1 if bad else 0
        try:
            results = run_batch(args.macro, args.batch, args.param, overrides, args.out, args.jobs, args.device,
                                args.threads, not args.no_overwrite, args.resume, on_item=on_item,
                                allow_outside=args.allow_outside_out, on_warning=lambda d: _err(d.format()),
                                cluster=args.cluster)
        except KeyboardInterrupt:
            _err(f"interrupted: running scans cancelled, the rest not started; summary in "
                 f"{Path(args.out).resolve() / 'batch.json'}")
            return 130
        bad = [r for r in results if r.status not in ("ok", "skipped")]
        print(f"\n{len(results) - len(bad)} of {len(results)} scans done, {len(bad)} failed; "
              f"outputs in {Path(args.out).resolve()}")
        for r in bad:
            first = (r.error or "").strip().splitlines()
            print(f"FAILED {r.item}:\n    " + "\n    ".join(first[:4]), file=sys.stderr)
        return 1 if bad else 0
    reporter = Reporter(TextProgress())
    client = cluster = blocks = None
    try:
        if args.cluster and not args.dry_run:  # one scan: its blocks go to the cluster's workers
            from .cluster import DaskBlocks, connect

            client, cluster = connect(args.cluster)
            blocks = DaskBlocks(client, args.cluster)
        result = run_file(args.macro, overrides, args.out, args.device, args.threads, not args.no_overwrite,
                          args.dry_run, reporter, None if args.dry_run else print_statement,
                          allow_outside=args.allow_outside_out, blocks=blocks)
    except RunFailed as e:
        _err(e.result.error)
        _err(f"run record: {e.result.out_dir / 'run.json'}")
        return 1
    finally:
        if client is not None:
            from .cluster import close

            close(client, cluster)
    if args.dry_run:
        print(f"{args.macro}: ok (dry run: nothing computed)")
        for k, v in result.record["params"].items():
            print(f"  param {k} = {v!r}")
        for p in result.record["inputs"]:
            print(f"  reads  {p}")
        return 0
    if result.status == "cancelled":
        _err("cancelled")
        return 130
    print(f"done in {result.seconds:.1f}s; outputs in {result.out_dir}")
    for o in result.outputs:
        print(f"  {o}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), size=args.size, seed=args.seed, epochs=args.epochs, device=args.device,
             reporter=Reporter(TextProgress()))
    return 0


def cmd_report(args) -> int:
    """Rebuild a batch's summary (a folder with batch.json) or a run's report (a folder with run.json)."""
    from damselfly.engine.core.errors import InputError

    out = Path(args.folder)
    if (out / "batch.json").exists():
        from .summary import write_summary

        for p in write_summary(out):
            print(p)
        return 0
    if (out / "run.json").exists():
        from damselfly.engine.report._run import write_run_report

        print(write_run_report(out / "report.html", out))
        return 0
    raise InputError("holds neither a batch (batch.json) nor a run (run.json)", out)


def cmd_app(args) -> int:
    # The app sits above this layer: it is found through the "damselfly.commands" entry-point group
    # (registered by the app package in pyproject.toml), never imported by name from here.
    from importlib import import_module
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="damselfly.commands") if ep.name == "app"]
    if not found:
        _err("error: the desktop app is not installed (no 'app' in the damselfly.commands entry points)")
        return 1
    try:
        app_main = found[0].load()
        import_module("PySide6.QtWidgets")
        import_module("pyvistaqt")
    except ImportError as e:
        _err(f"error: the desktop app cannot start: {e} (install it with: pip install 'damselfly[app]')")
        return 1
    return app_main(*args.files)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= n <= 1024:
        raise argparse.ArgumentTypeError(f"must be 1..1024, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="damselfly", description="Record once, replay on every scan.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a macro (or a batch of scans)")
    r.add_argument("macro")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a param")
    r.add_argument("--out", default="out", help="output folder (default: ./out)")
    r.add_argument("--batch", metavar="GLOB", help="run once per matching file, each into OUT/<stem>/")
    r.add_argument("--param", default="scan", help="the param a batch sets (default: scan)")
    r.add_argument("--jobs", type=_positive, default=1, help="batch items run at once (processes)")
    r.add_argument("--cluster", metavar="ADDRESS",
                   help="run on a Dask cluster (a scheduler's address, local:N worker processes or slurm:FILE): "
                        "a batch's scans, or one scan's blocks (infer, local_thickness of a Zarr scan)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    r.add_argument("--threads", type=_positive, default=None, help="CPU threads for PyTorch (networks)")
    r.add_argument("--dry-run", action="store_true", help="check and resolve inputs; compute nothing")
    r.add_argument("--resume", action="store_true", help="batch: skip scans whose run finished before")
    r.add_argument("--no-overwrite", action="store_true", help="fail rather than replace an existing output")
    r.add_argument("--allow-outside-out", action="store_true",
                   help="let outputs go outside the output folder (absolute paths, '..'); inputs stay protected")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check", help="check macros without running them")
    c.add_argument("macros", nargs="+")
    c.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fmt", help="print macros in canonical form")
    f.add_argument("macros", nargs="+")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="exit 1 if a file is not canonical")
    g.add_argument("--write", "-w", action="store_true", help="rewrite files in place")
    f.set_defaults(func=cmd_fmt)

    a = sub.add_parser("actions", help="list actions, or show one")
    a.add_argument("name", nargs="?")
    a.set_defaults(func=cmd_actions)

    d = sub.add_parser("demo", help="the main job on the bundled example, end to end")
    d.add_argument("--out", default="damselfly-demo", help="output folder (default: ./damselfly-demo)")
    d.add_argument("--size", type=int, default=128, help="phantom size in voxels per side (default 128)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--epochs", type=int, default=None, help="training epochs (default: the macro's)")
    d.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    d.set_defaults(func=cmd_demo)

    rp = sub.add_parser("report", help="rebuild a batch's summary.html and summary.csv, or a run's report.html")
    rp.add_argument("folder", help="a batch's output folder (batch.json) or one run's (run.json)")
    rp.set_defaults(func=cmd_report)

    p = sub.add_parser("app", help="the desktop app, opening scans, labels, models or macros")
    p.add_argument("files", nargs="*", help="files to open, each by what it holds")
    p.set_defaults(func=cmd_app)
    return ap


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops a run like Ctrl-C: cancelled, recorded, nothing half-written


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import signal

    if threading_is_main():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except MacroError as e:
        _err(str(e))
        return 1
    except DamselflyError as e:
        _err(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `damselfly actions | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
