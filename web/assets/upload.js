// The Upload page with JavaScript: one drop zone (and a picker) for packages
// and their checksum files, paired by name; a checksum file is read, and the
// mirror asked for its digest, before any byte is sent. Uploads use tus: they
// keep trying while the browser is offline, continue where the mirror stopped
// after a reload (tus fingerprints in localStorage, or the mirror's list of
// unfinished uploads), and a file already uploading is never sent twice.
// Without JavaScript the form posts normally.
(function () {
  'use strict';
  const form = document.getElementById('upload-form');
  const list = document.getElementById('uploads');
  if (!form || !list || !window.tus || !window.tus.isSupported) return;
  const tus = window.tus;

  const ENDPOINT = '/api/v1/uploads';
  const CHUNK_BYTES = 64 * 1024 * 1024;
  // Beyond tus' own quick retries, reconnect attempts back off up to this.
  const MAX_RECONNECT_DELAY_MS = 30000;
  // Another tab's claim on a file counts while its heartbeat is this fresh.
  const CLAIM_TTL_MS = 6000;
  const CLAIM_PREFIX = 'goldmirror.uploading.';
  const TAB_ID = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const ARCH_LABELS = { arm64: 'Apple silicon', x86_64: 'Intel', unknown: 'architecture unknown' };

  const headers = { 'X-CSRF-Token': form.dataset.csrf };
  const dropZone = document.getElementById('drop-zone');
  const picker = document.getElementById('files');
  const picked = document.getElementById('picked');
  const plain = document.getElementById('plain-fields');
  const plainPackage = document.getElementById('package');
  const plainChecksum = document.getElementById('checksum');
  const hint = document.getElementById('upload-hint');

  /** Staged picks, before Upload is pressed. */
  const staged = [];
  /** Uploads of this tab by file key (name, size, modification time). */
  const running = new Map();
  /** Files this tab finished, so a new pick says so instead of sending them again. */
  const finished = new Map();

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
  /** A new session after "sign in again" has a new CSRF token. */
  async function refreshCsrf() {
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
  window.setInterval(() => {
    for (const job of running.values()) if (job.active()) claim(job.key);
  }, 2000);
  window.addEventListener('pagehide', () => {
    for (const job of running.values()) release(job.key);
  });

  // --- staging: pick, pair, check ---------------------------------------------

  function addFiles(files) {
    const touched = new Set();
    for (const file of Array.prototype.slice.call(files)) {
      const type = kind(file.name);
      if (type === 'package') {
        const job = running.get(fileKey(file));
        if (job && job.active()) {
          job.note(file.name + ' was picked again: it is already uploading here, so this pick joins that upload.');
          continue;
        }
        if (staged.some((item) => item.file && fileKey(item.file) === fileKey(file))) continue;
        touched.add(stageInto(file, 'file', 'checksumFile'));
      } else if (type === 'checksum') {
        // Its package may already be uploading in this tab: the checksum then arrived too late for it.
        touched.add(stageInto(file, 'checksumFile', 'file'));
      } else {
        const item = newItem();
        item.other = file;
        touched.add(item);
      }
    }
    for (const item of touched) item.checked = check(item);
    renderStaged();
  }

  /** Puts a package or checksum file in `slot` of the item whose `partner` has the same name stem, or of a new one. */
  function stageInto(file, slot, partner) {
    let item = staged.find((i) => !i[slot] && i[partner] && stem(i[partner].name) === stem(file.name));
    if (!item) {
      item = newItem();
      item.arch = guessArch(file.name);
      item.archGuessed = item.arch !== 'unknown';
    }
    item[slot] = file;
    return item;
  }

  function newItem() {
    const item = {
      file: null,
      checksumFile: null,
      other: null,
      checksumText: '',
      sha: null,
      stored: null,
      arch: 'unknown',
      archGuessed: false,
      problem: '',
      resumeRow: null,
      checked: null,
    };
    staged.push(item);
    return item;
  }

  /** Reads the checksum file and asks the mirror about its digest; sets item.problem or item.stored. */
  async function check(item) {
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

  function renderStaged() {
    picked.textContent = '';
    for (const item of staged) {
      const row = el('div', 'picked-row');
      const name = item.file ? item.file.name : item.checksumFile ? item.checksumFile.name : item.other.name;
      const title = el('strong', '', name);
      row.append(title);
      if (item.file) row.append(el('span', 'muted', bytes(item.file.size)));
      if (item.file && item.checksumFile) row.append(el('span', 'muted', 'with ' + item.checksumFile.name));
      if (item.file && !item.checksumFile)
        row.append(el('span', 'muted', 'no checksum file: the SHA-256 is computed but not compared'));
      if (item.file) {
        const label = el('label', '', 'Architecture ');
        const select = el('select');
        select.setAttribute('aria-label', 'Architecture of ' + item.file.name);
        for (const [value, text] of [
          ['arm64', 'Apple silicon (arm64)'],
          ['x86_64', 'Intel (x86_64)'],
          ['unknown', 'Not sure (unknown)'],
        ]) {
          const option = el('option', '', text);
          option.value = value;
          option.selected = value === item.arch;
          select.append(option);
        }
        select.addEventListener('change', () => {
          item.arch = select.value;
          item.archGuessed = false;
        });
        label.append(select);
        row.append(label);
        if (item.archGuessed) row.append(el('span', 'muted', '(guessed from the name)'));
      }
      const status = el('span', 'picked-status');
      row.append(status);
      const remove = button('Remove');
      remove.setAttribute('aria-label', 'Remove ' + name);
      remove.addEventListener('click', () => {
        staged.splice(staged.indexOf(item), 1);
        renderStaged();
      });
      row.append(remove);
      picked.append(row);
      const show = () => {
        if (item.problem) {
          status.className = 'picked-status field-error';
          status.textContent = item.problem;
        } else if (item.stored) {
          status.className = 'picked-status';
          status.textContent = 'already stored as ' + item.stored.name + '; nothing to upload';
        } else if (!item.file) {
          status.className = 'picked-status warn';
          status.textContent = 'a checksum file: add its package too';
        } else if (item.resumeRow) {
          status.className = 'picked-status';
          status.textContent = 'continues the unfinished upload below';
        } else {
          status.className = 'picked-status muted';
          status.textContent = item.checked ? 'checking…' : '';
        }
      };
      show();
      if (item.checked) void item.checked.then(show);
    }
    if (staged.length > 0)
      picked.append(el('p', 'muted', 'Check the architecture of each package, then press Upload.'));
  }

  // --- running uploads --------------------------------------------------------

  function transient(error) {
    const res = error && error.originalResponse;
    if (!res) return true;
    const status = res.getStatus();
    return status === 0 || status === 409 || status === 423 || status === 429 || (status >= 500 && status !== 507);
  }
  function sessionEnded(error) {
    const res = error && error.originalResponse;
    if (!res) return false;
    if (res.getStatus() === 401) return true;
    return res.getStatus() === 403 && /csrf/i.test(res.getBody() || '');
  }
  /** A sentence for people; never a library's raw error text. */
  function friendly(error) {
    const res = error && error.originalResponse;
    if (res) {
      const status = res.getStatus();
      try {
        const body = JSON.parse(res.getBody());
        if (body && body.error && body.error.message) return sentence(body.error.message);
      } catch {
        // not JSON
      }
      if (status === 404 || status === 410)
        return 'The mirror no longer has this upload (it was discarded or expired). Pick the file again to start over.';
      if (status === 413) return 'The mirror does not accept a file this large.';
      if (status === 507) return 'The mirror’s disk is full; nothing was stored.';
      if (status >= 500)
        return 'The mirror could not take the upload (HTTP ' + status + '); the details are in its log.';
      return 'The mirror refused the upload (HTTP ' + status + ').';
    }
    const message = error && error.message ? String(error.message) : '';
    if (/source is done|NotReadable|NotFound|could not be read/i.test(message)) {
      return 'The file could not be read any more (was it moved, changed or deleted?). Pick it again to continue.';
    }
    return 'The connection to the mirror was lost and the upload could not continue.';
  }

  async function startItem(item) {
    if (item.other || item.problem) return failedRow(item, item.problem);
    if (item.stored) return storedRow(item);
    if (!item.file) {
      const want = item.checksumFile.name.replace(/\.txt$/i, '.pvmp');
      return failedRow(
        item,
        item.checksumFile.name +
          ' is a checksum file, not a package: add ' +
          want +
          ', the package it belongs to, and upload both together.',
      );
    }
    const key = fileKey(item.file);
    const existing = running.get(key);
    if (existing && existing.active())
      return existing.note(item.file.name + ' is already uploading here; this pick joins that upload.');
    if (claimedElsewhere(key))
      return failedRow(
        item,
        item.file.name + ' is already uploading in another tab or window of this browser; it continues there.',
      );
    const job = createJob(item);
    running.set(key, job);
    await job.begin();
  }

  function uploadRow(titleText) {
    const row = el('div', 'upload-row');
    const title = el('div', '', titleText);
    const bar = el('progress');
    bar.max = 100;
    bar.value = 0;
    const status = el('div', 'muted upload-status');
    const notes = el('div', 'muted upload-notes');
    const actions = el('div', 'actions');
    row.append(title, bar, status, notes, actions);
    list.prepend(row);
    return { row, title, bar, status, notes, actions };
  }

  function failedRow(item, message) {
    const name = item.file ? item.file.name : item.checksumFile ? item.checksumFile.name : item.other.name;
    const ui = uploadRow(name);
    ui.bar.remove();
    ui.status.className = 'field-error upload-status';
    ui.status.textContent = message;
    const dismiss = button('Dismiss');
    dismiss.addEventListener('click', () => ui.row.remove());
    ui.actions.append(dismiss);
  }

  function storedRow(item) {
    const blob = item.stored;
    const name = item.file ? item.file.name : item.checksumFile.name;
    const ui = uploadRow(name + (item.checksumFile ? ', checked against ' + item.checksumFile.name : ''));
    ui.bar.remove();
    ui.status.className = 'upload-status';
    const link = el('a', '', blob.name);
    link.href = '/admin/blobs/' + blob.sha256;
    ui.status.append('Already stored as ', link, ' (SHA-256 ' + blob.sha256 + '); nothing was uploaded. ');
    ui.status.append(createImageLinks(blob.sha256, blob.arch));
  }

  function createJob(item) {
    const file = item.file;
    const key = fileKey(file);
    const ui = uploadRow(
      file.name +
        ' (' +
        bytes(file.size) +
        ')' +
        (item.checksumFile ? ', checked against ' + item.checksumFile.name : '') +
        ' · ' +
        ARCH_LABELS[item.arch],
    );
    ui.bar.setAttribute('aria-label', 'Upload progress of ' + file.name);
    const cancel = button('Cancel');
    const resume = button('Resume', '');
    resume.hidden = true;
    ui.actions.append(resume, cancel);

    let state = 'starting';
    let timer = null;
    let attempts = 0;
    let lastBytes = 0;
    let lastTime = performance.now();
    let rate = 0;
    let uploadId = null;
    // tus forgets the upload's URL after any 4xx answer to HEAD, a 401 included; a new session must not start over.
    let knownUrl = null;

    const setStatus = (text, className) => {
      ui.status.className = (className || 'muted') + ' upload-status';
      ui.status.textContent = text;
    };
    const upload = new tus.Upload(file, {
      endpoint: ENDPOINT,
      headers: headers,
      metadata: {
        filename: file.name,
        checksum: item.checksumText || '',
        arch: item.arch,
        lastModified: String(file.lastModified),
      },
      chunkSize: CHUNK_BYTES,
      retryDelays: [0, 1000, 3000, 5000],
      // While offline tus would burn its retries in a second; the reconnect loop below waits for the network instead.
      onShouldRetry: (error) => transient(error) && navigator.onLine !== false,
      removeFingerprintOnSuccess: true,
      onUploadUrlAvailable() {
        knownUrl = upload.url;
        uploadId = idOf(upload.url);
        const row = uploadId && unfinishedById(uploadId);
        if (row) row.querySelector('.upload-state').textContent = 'uploading in this tab';
      },
      onProgress(sent, total) {
        if (state === 'reconnecting' || state === 'cancelled') return;
        state = 'uploading';
        attempts = 0;
        resume.hidden = true;
        const now = performance.now();
        const dt = (now - lastTime) / 1000;
        if (dt >= 0.5) {
          const current = Math.max(0, sent - lastBytes) / dt;
          rate = rate === 0 ? current : rate * 0.7 + current * 0.3;
          lastBytes = sent;
          lastTime = now;
        }
        const percent = total ? (sent / total) * 100 : 0;
        ui.bar.value = percent;
        if (sent === total) {
          setStatus('100% · all bytes sent; the mirror is checking the SHA-256…');
          return;
        }
        setStatus(
          Math.floor(percent) +
            '% · ' +
            bytes(sent) +
            ' of ' +
            bytes(total) +
            (rate > 0 ? ' · ' + bytes(rate) + '/s · ' + duration((total - sent) / rate) + ' left' : ''),
        );
      },
      onSuccess(payload) {
        state = 'done';
        window.clearTimeout(timer);
        release(key);
        dropUnfinishedRow(uploadId);
        ui.bar.value = 100;
        resume.remove();
        cancel.remove();
        const sha = payload && payload.lastResponse ? payload.lastResponse.getHeader('Upload-Sha256') : null;
        ui.status.className = 'upload-status';
        ui.status.textContent = '';
        if (!sha || !/^[0-9a-f]{64}$/.test(sha)) {
          // Never a link to a digest nobody named.
          const packages = el('a', '', 'Packages');
          packages.href = '/admin/blobs';
          ui.status.append(
            '100% · all bytes arrived, but the mirror did not say which package it stored; see ',
            packages,
            '.',
          );
          return;
        }
        finished.set(key, { sha256: sha, name: file.name, size: file.size, arch: item.arch });
        const link = el('a', '', 'SHA-256 ' + sha);
        link.href = '/admin/blobs/' + sha;
        // "Verified" only when a checksum file was compared; otherwise say that nothing was.
        const verdict = item.checksumText.trim()
          ? '100% · stored and verified. '
          : '100% · stored (no checksum file: its SHA-256 was not compared with anything). ';
        ui.status.append(el('span', '', verdict), link, ' · ', createImageLinks(sha, item.arch));
      },
      onError(error) {
        if (state === 'cancelled') return;
        if (sessionEnded(error)) {
          state = 'signed-out';
          setStatus(
            'Your session has ended. Sign in again (in another tab), then press Resume; the upload continues where it stopped.',
            'field-error',
          );
          resume.hidden = false;
          return;
        }
        if (transient(error)) {
          reconnect();
          return;
        }
        state = 'failed';
        release(key);
        setStatus(friendly(error), 'field-error');
        resume.remove();
        cancel.textContent = 'Dismiss';
      },
    });

    function reconnect() {
      state = 'reconnecting';
      window.clearTimeout(timer);
      attempts += 1;
      const delay = Math.min(MAX_RECONNECT_DELAY_MS, 1000 * Math.pow(2, Math.min(attempts, 5)));
      const offline = navigator.onLine === false;
      setStatus(
        offline
          ? 'Reconnecting… This computer is offline; the upload continues by itself when the network is back.'
          : 'Reconnecting… The mirror cannot be reached; trying again in ' + Math.round(delay / 1000) + ' s.',
        'warn',
      );
      resume.hidden = false;
      timer = setTimeout(go, delay);
    }

    async function go() {
      window.clearTimeout(timer);
      // Only a waiting upload starts again: the timer, the online event and Resume may all fire.
      if (state !== 'reconnecting' && state !== 'signed-out') return;
      if (state === 'signed-out') await refreshCsrf();
      if (state !== 'reconnecting' && state !== 'signed-out') return;
      if (upload.url === null && knownUrl !== null) upload.url = knownUrl;
      state = 'resuming';
      resume.hidden = true;
      setStatus('Resuming…');
      upload.start();
    }

    resume.addEventListener('click', () => void go());
    cancel.addEventListener('click', () => {
      if (state === 'failed' || state === 'cancelled' || state === 'done') {
        ui.row.remove();
        return;
      }
      state = 'cancelled';
      window.clearTimeout(timer);
      release(key);
      resume.remove();
      cancel.disabled = true;
      setStatus('Cancelling…');
      upload
        .abort(true)
        .then(
          () => {
            dropUnfinishedRow(uploadId);
            setStatus('Cancelled; nothing was stored.');
          },
          () =>
            setStatus(
              'Cancelled here, but the mirror could not be told; discard the unfinished upload below when it is reachable again.',
              'warn',
            ),
        )
        .finally(() => {
          cancel.disabled = false;
          cancel.textContent = 'Dismiss';
        });
    });

    return {
      key,
      active: () => state !== 'done' && state !== 'failed' && state !== 'cancelled',
      reconnecting: () => state === 'reconnecting',
      resumeNow: () => void go(),
      /** The network is gone: a request in flight would only stall, so stop it and wait (the mirror keeps what arrived). */
      pauseOffline() {
        if (state !== 'uploading' && state !== 'resuming') return;
        // abort(false) stops the request at once (its promise only matters for termination).
        void upload.abort(false);
        reconnect();
      },
      note(text) {
        ui.notes.textContent = text;
        ui.row.scrollIntoView({ block: 'nearest' });
      },
      async begin() {
        claim(key);
        setStatus('Starting…');
        const previous = await upload.findPreviousUploads();
        previous.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime));
        if (previous.length > 0) {
          upload.resumeFromPreviousUpload(previous[0]);
        } else if (item.resumeRow) {
          // Not started in this browser (or its storage was cleared): the mirror's list matched name, size and date.
          upload.options.uploadUrl = ENDPOINT + '/' + item.resumeRow.dataset.uploadId;
        }
        if (navigator.onLine === false) {
          reconnect();
          return;
        }
        state = 'uploading';
        upload.start();
      },
    };
  }

  // --- wiring -----------------------------------------------------------------

  dropZone.hidden = false;
  plain.hidden = true;
  plainPackage.required = false;
  form.noValidate = true;
  hint.textContent =
    'You can start another upload while one is running. If the page is closed or reloaded, pick the same file again: the upload continues where it stopped.';

  picker.addEventListener('change', () => {
    addFiles(picker.files);
    picker.value = '';
  });
  // The plain inputs stay usable (scripts, assistive tools): their files join the same list.
  for (const input of [plainChecksum, plainPackage]) {
    input.addEventListener('change', () => {
      addFiles(input.files);
      input.value = '';
    });
  }
  dropZone.addEventListener('dragover', (event) => {
    event.preventDefault();
    dropZone.classList.add('over');
  });
  dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
  dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropZone.classList.remove('over');
    if (event.dataTransfer && event.dataTransfer.files) addFiles(event.dataTransfer.files);
  });
  // A file dropped next to the zone must not replace the page (and its running uploads).
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (event) => {
      if (!dropZone.contains(event.target)) event.preventDefault();
    });
  }
  for (const row of unfinishedRows()) {
    const pick = button('Pick the file to resume');
    pick.addEventListener('click', () => picker.click());
    row.lastElementChild.prepend(pick, ' ');
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const items = staged.splice(0, staged.length);
    renderStaged();
    if (items.length === 0) {
      hint.textContent = 'Pick or drop a package (.pvmp) and its checksum file (.txt) first.';
      return;
    }
    for (const item of items) {
      await item.checked;
      await startItem(item);
    }
  });

  window.addEventListener('offline', () => {
    for (const job of running.values()) job.pauseOffline();
  });
  window.addEventListener('online', () => {
    for (const job of running.values()) if (job.reconnecting()) job.resumeNow();
  });
  window.addEventListener('beforeunload', (event) => {
    for (const job of running.values()) {
      if (job.active()) {
        event.preventDefault();
        event.returnValue = '';
        return;
      }
    }
  });
})();
