"""The experiment report as an HTML page with an inline SVG plot (no JavaScript, no extra
dependencies): tables per variant, the comparison to control, the SRM check, and the
cumulative rate per variant over time."""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path
from string import Template
from urllib.parse import quote

TEMPLATE = Template((Path(__file__).parent / "templates" / "experiment.html").read_text("utf-8"))
COLORS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989", "#6e7781"]
METRIC_LABELS = {
    "click_rate": "click rate (per item shown)",
    "upvote_rate": "upvote rate (per item shown)",
    "clicks_per_reader": "clicks per reader",
    "upvotes_per_reader": "upvotes per reader",
}


def _num(x, digits: int = 4) -> str:
    if x is None:
        return "&ndash;"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}f}"


def _pct(x) -> str:
    return "&ndash;" if x is None else f"{100 * x:+.1f}%"


def _p(p) -> str:
    if p is None:
        return "&ndash;"
    return "&lt;0.0001" if p < 1e-4 else f"{p:.4f}"


def _variants_table_ab(report: dict, colors: dict) -> str:
    head = ("<tr><th>variant</th><th class=l>strategy</th><th>weight</th><th>readers</th>"
            "<th>lists</th><th>items shown</th><th>clicks</th><th>reads</th><th>upvotes</th>"
            "<th>click rate</th><th>upvote rate</th><th>clicks / reader</th>"
            "<th>upvotes / reader</th></tr>")
    strategies = {v["name"]: v["strategy"] for v in report["variants_config"]}
    rows = []
    for v in report["ab"]["variants"]:
        control = " <span class=note>(control)</span>" if v["is_control"] else ""
        rows.append(
            f'<tr class="variant-row" data-variant="{escape(v["name"])}">'
            f'<td><span class=swatch style="background:{colors[v["name"]]}"></span>'
            f'{escape(v["name"])}{control}</td><td class=l>{escape(strategies[v["name"]])}</td>'
            f'<td>{v["weight"]:g}</td><td>{_num(v["readers"])}</td><td>{_num(v["lists"])}</td>'
            f'<td>{_num(v["impressions"])}</td><td>{_num(v["clicks"])}</td>'
            f'<td>{_num(v["reads"])}</td><td>{_num(v["upvotes"])}</td>'
            f'<td>{_num(v["click_rate"])}</td><td>{_num(v["upvote_rate"])}</td>'
            f'<td>{_num(v["clicks_per_reader"], 3)}</td><td>{_num(v["upvotes_per_reader"], 3)}</td>'
            "</tr>")
    return f'<table id="variants">{head}{"".join(rows)}</table>'


def _comparison_ab(report: dict) -> str:
    ab = report["ab"]
    rows = []
    for v in ab["variants"]:
        if v["vs_control"] is None:
            continue
        for metric, d in v["vs_control"].items():
            ci = ("&ndash;" if d["ci_low"] is None else
                  f'[{d["ci_low"]:+.4f}, {d["ci_high"]:+.4f}]')
            diff = "&ndash;" if d["diff"] is None else f'{d["diff"]:+.4f}'
            sig = ('<span class="sig-yes">yes</span>' if d["significant"]
                   else '<span class="sig-no">no</span>')
            primary = " <span class=note>(primary)</span>" if metric == ab["primary_metric"] else ""
            rows.append(
                f'<tr class="comparison-row" data-variant="{escape(v["name"])}" '
                f'data-metric="{metric}"><td>{escape(v["name"])}</td>'
                f'<td class=l>{METRIC_LABELS[metric]}{primary}</td>'
                f'<td>{_num(d["control"])}</td><td>{_num(d["treatment"])}</td>'
                f"<td>{diff}</td>"
                f'<td>{ci}</td><td>{_pct(d["relative"])}</td><td>{_p(d["p_value"])}</td>'
                f"<td>{sig}</td></tr>")
    table = ("<table id=comparison><tr><th>variant</th><th class=l>metric</th><th>control</th>"
             "<th>variant</th><th>difference</th><th>95% interval</th><th>relative</th>"
             "<th>p (reader level)</th><th>p &lt; " + f'{ab["alpha"]:g}' + "</th></tr>"
             + "".join(rows) + "</table>")
    srm = ab["srm"]
    expected = ", ".join(f"{e:.1f}" for e in srm["expected"])
    observed = ", ".join(f"{o:,}" for o in srm["observed"])
    if srm["p_value"] is None:
        srm_html = '<p class="ok" id="srm">Sample-ratio check: no readers yet.</p>'
    else:
        cls, verdict = (("warn", "MISMATCH &mdash; assignment or logging is broken; do not "
                                 "trust the comparison") if srm["mismatch"] else ("ok", "no mismatch"))
        srm_html = (f'<p class="{cls}" id="srm">Sample-ratio check (chi-square against the '
                    f"weights): readers {observed} vs expected {expected}, p = "
                    f'{_p(srm["p_value"])} &rarr; {verdict} (flagged below p = 0.001).</p>')
    return f"<h2>Difference to control</h2>{table}{srm_html}"


def _interleave_tables(report: dict, colors: dict) -> tuple[str, str]:
    il = report["interleave"]
    rows = []
    for name in (il["a"], il["b"]):
        rows.append(
            f'<tr class="variant-row" data-variant="{escape(name)}"><td>'
            f'<span class=swatch style="background:{colors[name]}"></span>{escape(name)}</td>'
            f'<td class=l>{escape(il["strategies"][name])}</td>'
            f'<td>{_num(il["credited_clicks"][name])}</td><td>{_num(il["wins"][name])}</td></tr>')
    variants = ('<table id="variants"><tr><th>variant</th><th class=l>strategy</th>'
                "<th>credited clicks</th><th>readers won</th></tr>" + "".join(rows) + "</table>"
                f'<p class="note">{_num(il["readers"])} readers, {_num(il["ties"])} ties '
                "(equal credit, including readers who clicked nothing).</p>")
    ci = il["share_b_ci"]
    ci_text = "&ndash;" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
    verdict = (f'<span class="sig-yes">{escape(il["preferred"])} preferred</span>'
               if il["significant"] and il["preferred"] else '<span class="sig-no">no significant preference</span>')
    comparison = (
        "<h2>Sign test</h2><table id=comparison><tr><th>share of decided readers won by "
        f'{escape(il["b"])}</th><th>95% interval</th><th>delta</th><th>p (sign test)</th>'
        "<th>verdict</th></tr>"
        f'<tr><td>{_num(il["share_b"], 3)}</td>'
        f"<td>{ci_text}</td>"
        f'<td>{_num(il["delta"], 3)}</td><td>{_p(il["p_value"])}</td><td>{verdict}</td></tr>'
        "</table>")
    return variants, comparison


def _svg_plot(timeline: dict, colors: dict, width: int = 960, height: int = 320) -> str:
    series = [s for s in timeline["series"] if s["points"]]
    left, right, top, bottom = 64, 150, 14, 40
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg id="timeline-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="cumulative {escape(timeline["metric"])} per variant over time">']
    if not series:
        parts.append(f'<text x="{left}" y="{top + ph / 2}">no data yet</text></svg>')
        return "".join(parts)
    times = [datetime.fromisoformat(p[0]).timestamp() for s in series for p in s["points"]]
    values = [p[1] for s in series for p in s["points"]]
    t0, t1 = min(times), max(times)
    if t1 <= t0:
        t1 = t0 + 1
    vmax = max(values) * 1.1 or 1.0

    def x(t):
        return left + (t - t0) / (t1 - t0) * pw

    def y(v):
        return top + ph - v / vmax * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" '
                 'stroke="#d0d7de"/>')
    for i in range(5):
        v = vmax * i / 4
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     'stroke="#eaeef2"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    span = t1 - t0
    fmt = "%H:%M:%S" if span < 3600 else ("%m-%d %H:%M" if span < 3 * 86400 else "%Y-%m-%d")
    for i in range(5):
        t = t0 + span * i / 4
        label = datetime.fromtimestamp(t, tz=timezone.utc).strftime(fmt)
        anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
        parts.append(f'<text x="{x(t):.1f}" y="{top + ph + 18}" text-anchor="{anchor}">'
                     f"{label}</text>")
    parts.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">time (UTC)'
                 "</text>")
    parts.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(timeline["unit"])}</text>')
    for i, s in enumerate(series):
        color = colors.get(s["variant"], COLORS[i % len(COLORS)])
        pts = " ".join(f"{x(datetime.fromisoformat(t).timestamp()):.1f},{y(v):.1f}"
                       for t, v in s["points"])
        parts.append(f'<polyline class="series" data-variant="{escape(s["variant"])}" '
                     f'fill="none" stroke="{color}" stroke-width="2.5" points="{pts}"/>')
        ly = top + 16 + 20 * i
        parts.append(f'<g class="legend-item"><line x1="{left + pw + 14}" x2="{left + pw + 34}" '
                     f'y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="3"/>'
                     f'<text x="{left + pw + 40}" y="{ly}">{escape(s["variant"])} '
                     f'({escape(s["strategy"])})</text></g>')
    parts.append("</svg>")
    return "".join(parts)


AB_METHOD = (
    "Readers are assigned to a variant by a stable hash of (experiment, user_id). Events are "
    "credited to the list whose request_id they carry; events without one go to the reader's "
    "latest list that showed the paper within {w:g} hours. Differences are computed at the "
    "reader level: per-reader counts by Welch's t-test; per-item rates by Welch's test on "
    "reader-level delta-method linearisations (one reader's impressions are not independent). "
    "The sample-ratio check is a chi-square test of readers per variant against the weights.")
IL_METHOD = (
    "Team-draft interleaving: every reader in the experiment sees one list merged from both "
    "strategies; each slot remembers which variant filled it and clicks on it are credited to "
    "that variant. A reader is a win for the variant with more credited clicks; the sign test "
    "is an exact two-sided binomial test on wins vs losses (ties dropped). Events are credited "
    "as in A/B tests (request_id, else the latest list showing the paper within {w:g} hours).")


def render_report_page(report: dict) -> str:
    names = [v["name"] for v in report["variants_config"]]
    colors = {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}
    t = report["totals"]
    summary = (f'<p id="totals">{t["readers"]:,} readers &middot; {t["lists"]:,} lists '
               f'&middot; {t["impressions"]:,} items shown &middot; {t["clicks"]:,} clicks '
               f'&middot; {t["reads"]:,} reads &middot; {t["upvotes"]:,} upvotes</p>')
    if report["kind"] == "interleave":
        variants_table, comparison = _interleave_tables(report, colors)
        method = IL_METHOD
    else:
        variants_table, comparison = _variants_table_ab(report, colors), _comparison_ab(report)
        method = AB_METHOD
    stopped = f' &middot; stopped {escape(report["stopped_at"])}' if report["stopped_at"] else ""
    meta = (f'{escape(report["kind"])} experiment &middot; control '
            f'<b>{escape(report["control"] or "-")}</b> &middot; traffic '
            f'{100 * report["traffic"]:g}% &middot; created {escape(report["created_at"])}{stopped}')
    description = (f'<p>{escape(report["description"])}</p>' if report["description"] else "")
    return TEMPLATE.substitute(
        title=escape(f'Experiment {report["name"]} - paperrec'),
        name=escape(report["name"]), status=escape(report["status"]), meta=meta,
        description=description, summary=summary, variants_table=variants_table,
        comparison=comparison, plot=_svg_plot(report["timeline"], colors),
        plot_caption=escape(f'Cumulative {report["timeline"]["metric"]} per variant.'),
        method=method.format(w=report["attribution_window_hours"]),
        json_link=f'/experiments/{quote(report["name"])}/report',
        generated_at=escape(report["generated_at"]),
    )
