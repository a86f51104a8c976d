"""Damselfly's desktop app (PySide6 + pyvistaqt). Thin: widgets call engine actions through the session.

The app itself is issue 6; until it lands, ``damselfly app`` says so instead of pretending.
"""


def main(macro: str | None = None) -> int:
    import sys

    print("error: the desktop app is not built yet (it is planned after the engine issues); "
          "use 'damselfly run' and 'damselfly demo' meanwhile", file=sys.stderr)
    return 1
