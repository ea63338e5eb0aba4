// The Upload page, first of three scripts (then upload-tus.js, then upload.js):
// what a picked file is (package or checksum file, its digest, a guessed
// architecture), what the mirror already holds or is receiving, and which
// files another tab of this browser is uploading. It only defines functions,
// shared through window.goldmirrorUpload; upload.js decides whether the page
// uses them.
(function () {
  'use strict';
  // Another tab's claim on a file counts while its heartbeat is this fresh.
  const CLAIM_TTL_MS = 6000;
  const CLAIM_PREFIX = 'goldmirror.uploading.';
  const TAB_ID = Math.random().toString(36).slice(2) + Date.now().toString(36);

  // --- small helpers ---------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function button(label, className) {
    const b = el('button', className || 'secondary', label);
    b.type = 'button';
    return b;
  }
  function bytes(n) {
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }
  function duration(seconds) {
    if (!isFinite(seconds)) return '…';
    if (seconds < 90) return Math.ceil(seconds) + ' s';
    if (seconds < 5400) return Math.ceil(seconds / 60) + ' min';
    return (seconds / 3600).toFixed(1) + ' h';
  }
  function sentence(text) {
    const t = String(text).trim();
    if (!t) return t;
    const s = t.charAt(0).toUpperCase() + t.slice(1);
    return /[.!?)]$/.test(s) ? s : s + '.';
  }
  function fileKey(file) {
    return file.name + '\u0000' + file.size + '\u0000' + file.lastModified;
  }
  function stem(name) {
    return name.replace(/\.(pvmp|txt)$/i, '').toLowerCase();
  }
  function kind(name) {
    if (/\.pvmp$/i.test(name)) return 'package';
    if (/\.txt$/i.test(name)) return 'checksum';
    return 'other';
  }
  /** Parallels' .txt: the first run of exactly 64 hex digits, as the server reads it. */
  function digestIn(text) {
    const runs = text.match(/[0-9a-fA-F]+/g) || [];
    for (const run of runs) if (run.length === 64) return run.toLowerCase();
    return null;
  }
  /** A guess from the file name (Win11-arm64, Win11-x86_64…); the admin can change it before uploading. */
  function guessArch(name) {
    const lower = name.toLowerCase().replace(/\.(pvmp|txt)$/, '');
    const tokens = lower.split(/[^a-z0-9]+/);
    const arm = tokens.some(
      (t) => ['arm', 'arm64', 'aarch64', 'applesilicon', 'silicon', 'm1', 'm2', 'm3', 'm4'].indexOf(t) >= 0,
    );
    const intel = /x86[-_]?64/.test(lower) || tokens.some((t) => ['x86', 'x64', 'amd64', 'intel'].indexOf(t) >= 0);
    return arm === intel ? 'unknown' : arm ? 'arm64' : 'x86_64';
  }
  function createImageLinks(sha, arch) {
    const span = el('span', 'create-image');
    const link = (slot, label) => {
      const a = el('a', '', label);
      a.href = '/admin/images/new?' + slot + '=' + encodeURIComponent(sha);
      return a;
    };
    if (arch === 'arm64' || arch === 'x86_64') {
      span.append(link(arch, 'Create a golden image with this package'));
    } else {
      span.append(
        'Create a golden image with this package: ',
        link('arm64', 'as Apple silicon'),
        ' · ',
        link('x86_64', 'as Intel'),
      );
    }
    return span;
  }

  // --- what the mirror says --------------------------------------------------

  async function storedPackage(sha) {
    try {
      const res = await window.fetch('/api/v1/blobs/' + sha, {
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
      });
      if (res.status === 200) return await res.json();
    } catch {
      // offline or unreachable: the upload itself will still enforce the checksum
    }
    return null;
  }
  /** A new session after "sign in again" has a new CSRF token, written into `headers`. */
  async function refreshCsrf(headers) {
    try {
      const res = await window.fetch('/api/v1/session', { credentials: 'same-origin' });
      if (res.ok) {
        const body = await res.json();
        if (body && body.csrfToken) headers['X-CSRF-Token'] = body.csrfToken;
      }
    } catch {
      // keep the old token; the next attempt says what is wrong
    }
  }
  /** The unfinished uploads the page was rendered with (see the table below the form). */
  function unfinishedRows() {
    return Array.prototype.slice.call(document.querySelectorAll('#unfinished-uploads tbody tr[data-upload-id]'));
  }
  function unfinishedFor(file) {
    return unfinishedRows().find(
      (row) =>
        row.dataset.name === file.name &&
        row.dataset.size === String(file.size) &&
        (row.dataset.lastModified === '' || row.dataset.lastModified === String(file.lastModified)),
    );
  }
  function unfinishedById(id) {
    return unfinishedRows().find((row) => row.dataset.uploadId === id);
  }
  function dropUnfinishedRow(id) {
    const row = id && unfinishedById(id);
    if (row) row.remove();
  }
  function idOf(url) {
    const match = /\/api\/v1\/uploads\/([A-Za-z0-9_-]+)$/.exec(url || '');
    return match ? match[1] : null;
  }

  // --- one upload per file across this browser's tabs -------------------------

  function claimedElsewhere(key) {
    try {
      const claim = JSON.parse(window.localStorage.getItem(CLAIM_PREFIX + key) || 'null');
      return Boolean(claim && claim.tab !== TAB_ID && Date.now() - claim.at < CLAIM_TTL_MS);
    } catch {
      return false;
    }
  }
  function claim(key) {
    try {
      window.localStorage.setItem(CLAIM_PREFIX + key, JSON.stringify({ tab: TAB_ID, at: Date.now() }));
    } catch {
      // storage full or disabled: the server still keeps one upload consistent
    }
  }
  function release(key) {
    try {
      const current = JSON.parse(window.localStorage.getItem(CLAIM_PREFIX + key) || 'null');
      if (current && current.tab === TAB_ID) window.localStorage.removeItem(CLAIM_PREFIX + key);
    } catch {
      // nothing to release
    }
  }

  /** Reads the checksum file and asks the mirror about its digest; sets item.problem or item.stored. */
  async function check(item, finished) {
    item.problem = '';
    item.stored = null;
    item.resumeRow = null;
    if (item.other) {
      item.problem = item.other.name + ' is neither a package (.pvmp) nor a checksum file (.txt); it was left out.';
      return;
    }
    if (item.file && claimedElsewhere(fileKey(item.file))) {
      item.problem =
        item.file.name + ' is already uploading in another tab or window of this browser; it continues there.';
      return;
    }
    if (item.checksumFile) {
      if (item.checksumFile.size > 64 * 1024) {
        item.problem =
          item.checksumFile.name + ' is too large to be a checksum file (' + bytes(item.checksumFile.size) + ').';
        return;
      }
      try {
        item.checksumText = (await item.checksumFile.text()).slice(0, 4096);
      } catch {
        item.problem = item.checksumFile.name + ' could not be read; pick it again.';
        return;
      }
      item.sha = digestIn(item.checksumText);
      if (!item.sha) {
        item.problem =
          item.checksumFile.name +
          ' has no SHA-256 in it (64 hexadecimal digits); it is not the checksum file of a package.';
        return;
      }
      const stored = await storedPackage(item.sha);
      if (stored) {
        if (item.file && item.file.size !== stored.size) {
          item.problem =
            item.checksumFile.name +
            ' names SHA-256 ' +
            item.sha +
            ', which is ' +
            stored.name +
            ' (' +
            bytes(stored.size) +
            ') on this mirror, but ' +
            item.file.name +
            ' is ' +
            bytes(item.file.size) +
            ': the checksum file does not belong to this package. Nothing was uploaded.';
          return;
        }
        item.stored = stored;
        return;
      }
    }
    if (item.file) {
      const done = finished.get(fileKey(item.file));
      if (done) {
        item.stored = done;
        return;
      }
      const row = unfinishedFor(item.file);
      if (
        row &&
        row.querySelector('.upload-state') &&
        /receiving now/.test(row.querySelector('.upload-state').textContent)
      ) {
        item.problem = item.file.name + ' is receiving data right now from another browser; it continues there.';
        return;
      }
      item.resumeRow = row || null;
    }
  }

  window.goldmirrorUpload = {
    el,
    button,
    bytes,
    duration,
    sentence,
    fileKey,
    stem,
    kind,
    guessArch,
    createImageLinks,
    refreshCsrf,
    unfinishedRows,
    unfinishedById,
    dropUnfinishedRow,
    idOf,
    claimedElsewhere,
    claim,
    release,
    check,
  };
})();
