/** One small stylesheet, inlined: no build step, no extra request, tidy from phone to laptop widths. */
export const STYLES = `
:root { --fg:#1d2430; --muted:#5c6675; --line:#d9dee6; --bg:#f6f7f9; --card:#fff; --accent:#1f5fbf; --ok:#1d7a46; --bad:#b3261e; --warn:#8a5a00; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--accent); }
.top { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1.5rem; padding:.6rem 1.2rem; background:#17202e; color:#fff; }
.top a { color:#dfe7f5; text-decoration:none; }
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
.mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85rem; overflow-wrap:anywhere; }
table { width:100%; border-collapse:collapse; background:var(--card); }
th, td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.85rem; color:var(--muted); font-weight:600; }
.table-wrap { overflow-x:auto; border:1px solid var(--line); border-radius:8px; margin-bottom:1rem; }
.badge { display:inline-block; padding:0 .5rem; border-radius:999px; font-size:.8rem; font-weight:600; }
.badge.ok { background:#e3f4ea; color:var(--ok); }
.badge.bad { background:#fbe6e4; color:var(--bad); }
.flash { padding:.6rem .9rem; border-radius:6px; }
.flash.ok { background:#e3f4ea; color:var(--ok); }
.flash.bad, .alert { background:#fbe6e4; color:var(--bad); border:1px solid #f0b8b3; }
.alert { padding:.8rem 1rem; border-radius:8px; margin-bottom:1rem; }
form.stack label, fieldset label { display:block; font-weight:600; margin:.6rem 0 .2rem; }
input[type=text], input[type=password], input[type=file], textarea, select { width:100%; max-width:36rem; padding:.45rem .55rem; border:1px solid #b8c0cc; border-radius:6px; font:inherit; background:#fff; }
input:focus, select:focus, textarea:focus, button:focus, a:focus { outline:3px solid #9cc0f5; outline-offset:1px; }
input[aria-invalid=true], select[aria-invalid=true] { border-color:var(--bad); }
fieldset { border:1px solid var(--line); border-radius:8px; margin:1rem 0; padding:.6rem 1rem 1rem; max-width:40rem; min-width:0; }
legend { font-weight:700; padding:0 .3rem; }
.check { display:flex !important; gap:.5rem; align-items:center; font-weight:400 !important; }
.field-error { color:var(--bad); margin:.2rem 0 0; font-size:.9rem; }
button, .button { display:inline-block; padding:.45rem .9rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; font:inherit; cursor:pointer; text-decoration:none; }
button.secondary, .button.secondary { background:#fff; color:var(--accent); }
button.danger { background:var(--bad); border-color:var(--bad); }
button.link { background:none; border:none; color:#dfe7f5; padding:0; text-decoration:underline; }
.actions { display:flex; flex-wrap:wrap; gap:.5rem; margin-top:1rem; align-items:center; }
.inline { display:inline; margin:0; }
.narrow { max-width:26rem; }
.flush { margin-top:0; }
.copy { margin:.4rem 0 .8rem; }
.copy-label { font-weight:600; display:block; }
.copy-row { display:flex; gap:.4rem; align-items:flex-start; max-width:60rem; }
.copy-value { flex:1; min-width:0; display:block; padding:.45rem .55rem; border:1px solid #b8c0cc; border-radius:6px; background:#fff; font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85rem; overflow-wrap:anywhere; white-space:pre-wrap; user-select:all; }
.copy-value .seg { display:inline-block; max-width:100%; }
.copy-row button { flex:none; }
.not-ready { margin:.2rem 0; }
main code { overflow-wrap:anywhere; }
.banner { padding:.7rem 1rem; border-radius:8px; margin:.5rem 0 1rem; }
.banner p { margin:.2rem 0; }
.banner.bad { background:#fbe6e4; color:var(--bad); border:1px solid #f0b8b3; }
.banner.bad a { color:var(--bad); font-weight:600; }
.warn-text { color:var(--bad); font-weight:600; }
.help { border-left:4px solid var(--accent); }
.help dt { font-weight:600; margin-top:.5rem; }
.help dd { margin:0 0 .2rem 0; }
.changes table { background:transparent; }
.changes td.old { color:var(--muted); text-decoration:line-through; }
.changes td.old, .changes td.new { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.85rem; overflow-wrap:anywhere; }
.card.warned { border-color:#f0b8b3; }
.pending { background:#fff6e0; border:1px solid #e8c66a; color:#5a3d00; }
.pending h2, .pending h3 { margin-top:0; }
.steps li.ok::marker { content:"✓ "; color:var(--ok); }
.steps li.bad::marker { content:"✗ "; color:var(--bad); }
progress { width:100%; max-width:36rem; height:1.1rem; }
.upload-row { border:1px solid var(--line); border-radius:8px; padding:.6rem .9rem; margin:.5rem 0; background:#fff; overflow-wrap:anywhere; }
.drop-zone { position:relative; border:2px dashed #9aa6b8; border-radius:10px; padding:1.2rem; text-align:center; background:#fbfcfe; max-width:40rem; }
.drop-zone label.button { display:inline-block; margin:0; font-weight:600; }
.drop-zone.over { border-color:var(--accent); background:#eef4fd; }
.drop-zone[hidden], .plain-fields[hidden] { display:none; }
.visually-hidden { position:absolute !important; left:0; top:0; width:1px !important; height:1px; padding:0 !important; border:0 !important; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
.picked-row { display:flex; flex-wrap:wrap; gap:.3rem .8rem; align-items:center; border-bottom:1px solid var(--line); padding:.4rem 0; overflow-wrap:anywhere; }
.picked-row select { width:auto; }
.warn { color:var(--warn); }
.upload-row .actions { margin-top:.4rem; }
@media (max-width:640px) { th, td { padding:.35rem .4rem; font-size:.9rem; } .hide-narrow { display:none; } .account { margin-left:0; } }
`;
