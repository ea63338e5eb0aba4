// Live regions: every element with data-live="<url>" is re-rendered from that
// URL (an HTML fragment the server renders) every few seconds while the tab is
// visible. No framework; without JavaScript the page's Refresh link does the same.
(() => {
  const INTERVAL_MS = 3000;
  const regions = [...document.querySelectorAll('[data-live]')];
  if (regions.length === 0) return;
  let stopped = false;

  async function refresh(region) {
    try {
      const res = await window.fetch(region.dataset.live, {
        credentials: 'same-origin',
        headers: { Accept: 'text/html' },
      });
      // A redirect means the session ended (sign-in page): stop rather than paste that page in.
      if (res.redirected || !res.ok) {
        if (res.redirected || res.status === 401 || res.status === 403) stopped = true;
        return;
      }
      region.innerHTML = await res.text();
      region.dataset.liveUpdated = String(Date.now());
    } catch {
      // Offline for a moment: try again on the next tick.
    }
  }

  window.setInterval(() => {
    if (stopped || document.hidden) return;
    for (const region of regions) void refresh(region);
  }, INTERVAL_MS);
})();
