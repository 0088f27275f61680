"""The report's and the viewer's stylesheet (inline: the pages open offline)."""

CSS = """
:root { --fg:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#fff; --accent:#2563eb;
        --ok:#16a34a; --bad:#dc2626; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--fg); background:var(--bg); }
header.top { background:#0f172a; color:#fff; padding:14px 24px; }
header.top h1 { margin:0; font-size:18px; font-weight:600; }
header.top .sub { color:#cbd5e1; font-size:12px; }
nav { display:flex; flex-wrap:wrap; gap:4px 14px; margin-top:6px; }
nav a { color:#93c5fd; text-decoration:none; font-size:13px; }
main { max-width:1180px; margin:0 auto; padding:16px 24px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 18px;
          margin:14px 0; }
section > h2 { margin:0 0 10px; font-size:16px; }
h3 { font-size:14px; margin:16px 0 6px; }
h4 { font-size:13px; margin:10px 0 4px; color:#374151; }
.muted { color:var(--muted); fill:var(--muted); }
.tiles { display:flex; flex-wrap:wrap; gap:10px; }
.tile { border:1px solid var(--line); border-radius:6px; padding:8px 12px; min-width:120px; }
.tile .v { font-size:20px; font-weight:600; }
.tile .k { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; margin:6px 0; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
th { background:#f1f5f9; font-weight:600; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
pre { background:#f8fafc; border:1px solid var(--line); border-radius:4px; padding:8px; white-space:pre-wrap;
      word-break:break-word; max-height:360px; overflow:auto; font-size:12px; margin:4px 0; }
details { margin:4px 0; }
details > summary { cursor:pointer; }
.example { border-left:3px solid var(--bad); padding:4px 10px; margin:8px 0; background:#fffafa; }
.reason { color:#991b1b; font-weight:500; }
.pass { color:var(--ok); font-weight:600; }
.fail { color:var(--bad); font-weight:600; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); gap:8px 18px; }
.chart { max-width:100%; height:auto; }
.chart text { fill:#374151; font-family:inherit; }
.note { background:#fffbeb; border:1px solid #fde68a; border-radius:6px; padding:6px 10px; margin:6px 0;
        font-size:13px; }
.tag { display:inline-block; border:1px solid var(--line); border-radius:10px; padding:0 8px; font-size:12px;
       margin-right:4px; background:#f8fafc; }
a { color:var(--accent); }
"""

VIEWER_CSS = CSS + """
form.filters { display:flex; flex-wrap:wrap; gap:8px 12px; align-items:end; }
form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
form.filters select, form.filters input { font-size:13px; padding:3px 6px; min-width:150px; }
.items td.prompt { max-width:560px; }
.responses { display:grid; grid-auto-flow:column; grid-auto-columns:minmax(360px,1fr); gap:10px;
             overflow-x:auto; padding-bottom:6px; }
.resp { border:1px solid var(--line); border-radius:6px; padding:8px; background:#fff; }
.resp.rejected { border-color:#fca5a5; background:#fffafa; }
.resp h4 { margin:0 0 6px; }
.pager { display:flex; gap:12px; align-items:center; margin:8px 0; }
.check-line { border-top:1px solid var(--line); padding:4px 0; font-size:12px; overflow-wrap:anywhere; }
.small { font-size:11px; }
"""
