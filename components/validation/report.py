"""The HTML report of a validation run: every expectation, its result, and samples of what failed."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from components.validation.records import _jsonable, _Record
from components.validation.suite import _REPORT_ROWS

# ---------------------------------------------------------------------------------------- report

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}.passed{color:#17692b}.failed,.error{color:#b00020;font-weight:bold}
.skipped{color:#777}.verdict-accepted{color:#17692b}.verdict-rejected{color:#b00020}code{font-size:12px}
"""


def render_report(records: list[_Record], summary: Mapping[str, Any], quarantined: pd.DataFrame) -> str:
    """A self-contained HTML page: the verdict, the summary, every rule with its result, quarantined rows."""
    esc = html.escape
    summary_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in summary.items())
    rule_rows = "".join(
        f"<tr><td>{esc(r.level)}</td><td><code>{esc(r.expectation)}</code></td><td>{esc(r.column or '')}</td>"
        f"<td><code>{esc(str(r.arguments))}</code></td><td class='{r.status}'>{r.status}</td>"
        f"<td>{esc(r.observed)}</td><td>{r.unexpected_count}</td>"
        f"<td><code>{esc(str([_jsonable(v) for v in r.samples]))}</code></td><td>{esc(r.message)}</td></tr>"
        for r in records
    )
    shown = quarantined.head(_REPORT_ROWS)
    quarantine_html = (
        shown.to_html(index=False, na_rep="", escape=True, border=0)
        if len(shown)
        else "<p>No row was quarantined.</p>"
    )
    verdict = str(summary.get("verdict", ""))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Validation report: {esc(str(summary.get('suite')))}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Validation report <span class='verdict-{esc(verdict)}'>{esc(verdict.upper())}</span></h1>"
        f"<p>Suite <code>{esc(str(summary.get('suite')))}</code> v{esc(str(summary.get('suite_version')))}, "
        f"Great Expectations {esc(str(summary.get('great_expectations_version')))}.</p>"
        f"<h2>Summary</h2><table>{summary_rows}</table>"
        "<h2>Expectations</h2><table><tr><th>level</th><th>expectation</th><th>column</th><th>arguments</th>"
        "<th>status</th><th>observed</th><th>unexpected</th><th>samples</th><th>message</th></tr>"
        f"{rule_rows}</table>"
        f"<h2>Quarantined rows ({len(quarantined)}, first {min(len(quarantined), _REPORT_ROWS)} shown)</h2>"
        f"{quarantine_html}</body></html>"
    )
