/**
 * One small stylesheet, inlined: no build step, no extra request, tidy from
 * phone to laptop widths. Every colour is a variable, so the dark palette
 * (prefers-color-scheme: dark) only redefines the variables; both palettes
 * keep body text, links, muted text and badges at a contrast of 4.5:1 or more.
 */
export const STYLES = `
:root { color-scheme: light dark;
  --fg:#1d2430; --muted:#5c6675; --line:#d9dee6; --bg:#f6f7f9; --card:#fff; --accent:#1f5fbf; --accent-fg:#fff;
  --ok:#1d7a46; --ok-bg:#e3f4ea; --bad:#b3261e; --bad-bg:#fbe6e4; --bad-line:#f0b8b3; --warn:#8a5a00; --warn-bg:#fdf3dc;
  --neutral:#3d4a5c; --neutral-bg:#e8ecf2; --danger:#b3261e; --danger-fg:#fff;
  --input-bg:#fff; --input-line:#b8c0cc; --focus:#9cc0f5; --top-bg:#17202e; --top-fg:#dfe7f5; --chart-bar:#1f5fbf; --chart-rule:#d9dee6; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e4e8ef; --muted:#a3adbb; --line:#2f3947; --bg:#10151c; --card:#18202a; --accent:#8ab8ff; --accent-fg:#0d1620;
    --ok:#7ddaa4; --ok-bg:#133222; --bad:#ff9a90; --bad-bg:#3a1714; --bad-line:#6b2a25; --warn:#f0c46c; --warn-bg:#33270f;
    --neutral:#d3dbe6; --neutral-bg:#2a3545; --danger:#c8372d; --danger-fg:#fff;
    --input-bg:#0f151d; --input-line:#4a5669; --focus:#4d7cc7; --top-bg:#0a0e13; --top-fg:#c9d3e3; --chart-bar:#6fa6ff; --chart-rule:#2f3947; }
}
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--accent); }
code { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.9em; }
.top { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1.5rem; padding:.6rem 1.2rem; background:var(--top-bg); color:#fff; }
.top a { color:var(--top-fg); text-decoration:none; }
.top a[aria-current=page] { color:#fff; font-weight:600; border-bottom:2px solid #fff; }
.brand { font-weight:700; font-size:1.1rem; color:#fff !important; }
.top nav ul { display:flex; flex-wrap:wrap; gap:.2rem 1rem; list-style:none; margin:0; padding:0; }
.account { margin-left:auto; display:flex; gap:.8rem; align-items:center; }
.account form { margin:0; }
main { max-width:1100px; margin:0 auto; padding:1rem 1.2rem 3rem; }
h1 { font-size:1.5rem; margin:.5rem 0 1rem; }
h2 { font-size:1.15rem; margin:1.6rem 0 .6rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:1rem 1.2rem; margin:0 0 1rem; }
.card > h2:first-child, .card > h3:first-child { margin-top:0; }
.grid { display:grid; gap:1rem; grid-template-columns:repeat(auto-fit,minmax(200px,1fr)); }
.stat { font-size:1.6rem; font-weight:600; }
.muted { color:var(--muted); }
.empty { color:var(--muted); background:var(--card); border:1px dashed var(--line); border-radius:8px; padding:.8rem 1rem; }
.mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85rem; overflow-wrap:anywhere; }
.nowrap { white-space:nowrap; }
.visually-hidden { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
table { width:100%; border-collapse:collapse; background:var(--card); }
th, td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.85rem; color:var(--muted); font-weight:600; }
td.ua { max-width:16rem; font-size:.85rem; color:var(--muted); overflow-wrap:anywhere; }
.table-wrap { overflow-x:auto; border:1px solid var(--line); border-radius:8px; margin-bottom:1rem; }
.badge { display:inline-block; padding:0 .5rem; border-radius:999px; font-size:.8rem; font-weight:600; white-space:nowrap; }
.badge.ok { background:var(--ok-bg); color:var(--ok); }
.badge.bad { background:var(--bad-bg); color:var(--bad); }
.badge.neutral { background:var(--neutral-bg); color:var(--neutral); }
.badge.warn { background:var(--warn-bg); color:var(--warn); }
.flash { padding:.6rem .9rem; border-radius:6px; }
.flash.ok { background:var(--ok-bg); color:var(--ok); }
.flash.bad, .alert { background:var(--bad-bg); color:var(--bad); border:1px solid var(--bad-line); }
.alert { padding:.8rem 1rem; border-radius:8px; margin-bottom:1rem; }
.alert a { color:inherit; }
form.stack label, fieldset label, .filters label { display:block; font-weight:600; margin:.6rem 0 .2rem; }
input[type=text], input[type=password], input[type=file], input[type=search], textarea, select { width:100%; max-width:36rem; padding:.45rem .55rem; border:1px solid var(--input-line); border-radius:6px; font:inherit; color:var(--fg); background:var(--input-bg); }
input:focus, select:focus, textarea:focus, button:focus, a:focus { outline:3px solid var(--focus); outline-offset:1px; }
input[aria-invalid=true], select[aria-invalid=true], textarea[aria-invalid=true] { border-color:var(--bad); }
fieldset { border:1px solid var(--line); border-radius:8px; margin:1rem 0; padding:.6rem 1rem 1rem; max-width:40rem; min-width:0; }
legend { font-weight:700; padding:0 .3rem; }
.check { display:flex !important; gap:.5rem; align-items:center; font-weight:400 !important; }
.field-error { color:var(--bad); margin:.2rem 0 0; font-size:.9rem; }
.filters { display:grid; gap:0 1rem; grid-template-columns:repeat(auto-fit,minmax(11rem,1fr)); align-items:end; }
.filters .actions { margin-top:.6rem; }
button, .button { display:inline-block; padding:.45rem .9rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:var(--accent-fg); font:inherit; cursor:pointer; text-decoration:none; }
button.secondary, .button.secondary { background:var(--card); color:var(--accent); }
button.danger, .button.danger { background:var(--danger); border-color:var(--danger); color:var(--danger-fg); }
button.link { background:none; border:none; color:var(--top-fg); padding:0; text-decoration:underline; }
.actions { display:flex; flex-wrap:wrap; gap:.5rem; margin-top:1rem; align-items:center; }
.inline { display:inline; margin:0; }
button.small { padding:.1rem .5rem; font-size:.85rem; }
ul.compact { margin:0; padding-left:1.1rem; }
td.upstream-url { min-width:14rem; }
td.row-actions form { display:block; margin:0 0 .3rem; }
td.row-actions button { white-space:nowrap; }
.narrow { max-width:26rem; }
.flush { margin-top:0; }
.copy { margin:.4rem 0 .8rem; }
.copy-label { font-weight:600; display:block; }
.copy-row { display:flex; gap:.4rem; align-items:flex-start; max-width:60rem; }
.copy-value { flex:1; min-width:0; display:block; padding:.45rem .55rem; border:1px solid var(--input-line); border-radius:6px; background:var(--input-bg); font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85rem; overflow-wrap:anywhere; white-space:pre-wrap; user-select:all; }
.copy-value .seg { display:inline-block; max-width:100%; }
.copy-row button { flex:none; }
.not-ready { margin:.2rem 0; }
main code { overflow-wrap:anywhere; }
.banner { padding:.7rem 1rem; border-radius:8px; margin:.5rem 0 1rem; }
.banner p { margin:.2rem 0; }
.banner.bad { background:var(--bad-bg); color:var(--bad); border:1px solid var(--bad-line); }
.banner.bad a { color:var(--bad); font-weight:600; }
.warn-text { color:var(--bad); font-weight:600; }
.help { border-left:4px solid var(--accent); }
.help dt { font-weight:600; margin-top:.5rem; }
.help dd { margin:0 0 .2rem 0; }
.changes table { background:transparent; }
.changes td.old { color:var(--muted); text-decoration:line-through; }
.changes td.old, .changes td.new { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85rem; overflow-wrap:anywhere; }
.card.warned { border-color:var(--bad-line); }
.pending { background:var(--warn-bg); border:1px solid var(--warn); color:var(--fg); }
.pending h2, .pending h3 { margin-top:0; }
.steps li.ok::marker { content:"✓ "; color:var(--ok); }
.steps li.bad::marker { content:"✗ "; color:var(--bad); }
progress { width:100%; max-width:36rem; height:1.1rem; accent-color:var(--accent); }
.upload-row { border:1px solid var(--line); border-radius:8px; padding:.6rem .9rem; margin:.5rem 0; background:var(--card); overflow-wrap:anywhere; }
.drop-zone { position:relative; border:2px dashed var(--input-line); border-radius:10px; padding:1.2rem; text-align:center; background:var(--card); max-width:40rem; }
.drop-zone label.button { display:inline-block; margin:0; font-weight:600; }
.drop-zone.over { border-color:var(--accent); background:var(--neutral-bg); }
.drop-zone[hidden], .plain-fields[hidden] { display:none; }
.visually-hidden { position:absolute !important; left:0; top:0; width:1px !important; height:1px; padding:0 !important; border:0 !important; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
.picked-row { display:flex; flex-wrap:wrap; gap:.3rem .8rem; align-items:center; border-bottom:1px solid var(--line); padding:.4rem 0; overflow-wrap:anywhere; }
.picked-row select { width:auto; }
.warn { color:var(--warn); }
.upload-row .actions { margin-top:.4rem; }
.live-note { font-size:.85rem; font-weight:400; }
.history { list-style:none; margin:0 0 1rem; padding:0; background:var(--card); border:1px solid var(--line); border-radius:8px; }
.history li { padding:.45rem .8rem; border-bottom:1px solid var(--line); overflow-wrap:anywhere; }
.history li:last-child { border-bottom:none; }
.history time { color:var(--muted); font-size:.85rem; margin-right:.4rem; white-space:nowrap; }
.chart-grid-2 { display:grid; gap:1rem; grid-template-columns:repeat(auto-fit,minmax(280px,1fr)); }
figure.chart-card { margin:0 0 1rem; }
figure.chart-card figcaption { font-weight:600; margin-bottom:.4rem; }
svg.chart { display:block; width:100%; height:auto; }
.chart-bar { fill:var(--chart-bar); }
.chart-bar:hover { fill:var(--fg); }
.chart-rule line, line.chart-axis { stroke:var(--chart-rule); stroke-width:1; }
line.chart-axis { stroke:var(--muted); }
.chart-label { fill:var(--muted); font-size:12px; font-family:system-ui,sans-serif; }
.chart-empty { font-size:14px; }
details summary { cursor:pointer; color:var(--accent); margin:.2rem 0 .6rem; }
.facts { display:grid; grid-template-columns:max-content minmax(0,1fr); gap:.2rem 1rem; margin:.6rem 0; }
.facts dt { font-weight:600; }
.facts dd { margin:0; overflow-wrap:anywhere; }
.facts ul { margin:.2rem 0; padding-left:1.2rem; }
pre.env { background:var(--input-bg); border:1px solid var(--line); border-radius:6px; padding:.5rem .7rem; white-space:pre-wrap; overflow-wrap:anywhere; font-size:.85rem; }
.inline-field { display:flex; flex-wrap:wrap; gap:.4rem .6rem; align-items:center; margin:.6rem 0 0; }
.inline-field label { font-weight:600; }
.inline-field .field-error { flex-basis:100%; }
input[type=number] { width:6rem; padding:.4rem .5rem; border:1px solid var(--input-line); border-radius:6px; font:inherit; color:var(--fg); background:var(--input-bg); }
@media (max-width:640px) { th, td { padding:.35rem .4rem; font-size:.9rem; } .hide-narrow { display:none; } .account { margin-left:0; } }
`;
