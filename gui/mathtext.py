"""The engine's update rules (a small LaTeX subset) as Qt rich text: Greek letters, sub- and
superscripts, square roots with a bar, fractions written a/b, numbers substituted.

matplotlib is not a dependency, so nothing here typesets real LaTeX: this reads exactly the subset
that ``engine.glyphs.update_rule_lines`` and ``StepPart.latex`` write (``\\frac``, ``\\sqrt``,
``\\hat``, ``\\bar``, ``\\mathrm``, ``^``, ``_``, Greek, ``\\leftarrow`` ...) and turns it into HTML that
a QLabel shows. An unknown command is shown by its name, never dropped silently.
"""
from __future__ import annotations

import html
import re

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "phi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ",
    "Psi": "Ψ", "Omega": "Ω",
}
SYMBOLS = {
    "leftarrow": " ← ", "to": " → ", "rightarrow": " → ", "cdot": "·", "times": "×", "pm": "±", "mp": "∓",
    "nabla": "∇", "max": "max", "min": "min", "log": "log", "exp": "exp", "infty": "∞", "le": " ≤ ",
    "leq": " ≤ ", "ge": " ≥ ", "geq": " ≥ ", "approx": " ≈ ", "partial": "∂", "sum": "∑", "prod": "∏",
}
SPACES = {",": "\u2009", " ": " ", ";": " ", ":": " ", "!": "", "quad": "\u2003", "qquad": "\u2003\u2003"}
ACCENTS = {"hat": "\u0302", "bar": "\u0304", "tilde": "\u0303", "dot": "\u0307", "vec": "\u20d7"}
_BINARY = {"+": "+", "-": "\u2212", "=": "="}
_TOKEN = re.compile(r"\\([A-Za-z]+|.)|([{}^_])|(\s+)|(.)", re.S)
_TAG = re.compile(r"<[^>]+>")


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(text):
        cmd, special, space, char = m.groups()
        if cmd is not None:
            out.append(("cmd", cmd))
        elif special is not None:
            out.append(("special", special))
        elif space is not None:
            continue  # LaTeX math ignores blanks; spacing is ours to choose
        else:
            out.append(("char", char))
    return out


def plain(html_text: str) -> str:
    """The text a rich-text string shows (tags dropped, entities decoded)."""
    return html.unescape(_TAG.sub("", html_text))


def _top_level_operator(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and i > 0 and ch in "+\u2212-/·×,= \u2009\u2003":
            return True
    return False


def _wrap(inner: str) -> str:
    return f"({inner})" if _top_level_operator(plain(inner).strip()) else inner


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> tuple[str, str] | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def group(self, script: bool) -> str:
        """One argument: a braced group or a single atom."""
        tok = self.peek()
        if tok == ("special", "{"):
            self.pos += 1
            return self.sequence(script, until="}")
        return self.atom(script, last="")

    def sequence(self, script: bool, until: str | None = None) -> str:
        parts: list[str] = []
        last = ""  # plain text emitted so far in this sequence, to tell unary from binary minus
        while True:
            tok = self.peek()
            if tok is None:
                break
            if until is not None and tok == ("special", until):
                self.pos += 1
                break
            piece = self.atom(script, last)
            parts.append(piece)
            last += plain(piece)
        return "".join(parts)

    def atom(self, script: bool, last: str) -> str:
        tok = self.next()
        if tok is None:
            return ""
        kind, value = tok
        if kind == "special":
            if value == "{":
                return self.sequence(script, until="}")
            if value == "}":
                return ""
            if value == "^":
                return f"<sup>{self.group(True)}</sup>"
            return f"<sub>{self.group(True)}</sub>"
        if kind == "char":
            if value in _BINARY:
                symbol = _BINARY[value]
                stripped = last.rstrip()
                unary = value != "=" and (not stripped or stripped[-1] in "(,[=+\u2212←→·×±/")
                if unary or script:
                    return symbol
                return f" {symbol} "
            if value.isalpha():
                return f"<i>{html.escape(value)}</i>"
            return html.escape(value)
        # commands
        if value in GREEK:
            return GREEK[value]
        if value in SPACES:
            return SPACES[value]
        if value in SYMBOLS:
            return SYMBOLS[value] if not script else SYMBOLS[value].strip()
        if value in ("frac", "tfrac", "dfrac"):
            num = self.group(script)
            den = self.group(script)
            return f"{_wrap(num)}/{_wrap(den)}"
        if value == "sqrt":
            inner = self.group(script)
            return f"√<span style=\"text-decoration: overline;\">{inner}</span>"
        if value in ACCENTS:
            inner = self.group(script)
            # The combining mark goes on the last letter, after any italics tag closes.
            if inner.endswith("</i>"):
                return inner[:-4] + ACCENTS[value] + "</i>"
            return inner + ACCENTS[value]
        if value in ("mathrm", "text", "operatorname", "mathit"):
            inner = self.group(script)
            return plain(inner) if value != "mathit" else inner
        if value in ("left", "right", "big", "Big", "bigl", "bigr"):
            return ""  # the delimiter that follows is drawn as it is
        if value in ("{", "}", "|", "%", "#", "&", "_"):
            return html.escape(value)
        return html.escape(value)


def latex_to_html(text: str) -> str:
    """One equation of the engine's LaTeX subset as Qt rich text (no enclosing tags)."""
    return _Parser(text).sequence(False).strip()


def lines_to_html(lines: list[str], font_px: int = 15) -> str:
    """Several equations, one per line, for a QLabel."""
    body = "<br>".join(latex_to_html(line) for line in lines)
    return f"<div style=\"font-size: {font_px}px;\">{body}</div>"
