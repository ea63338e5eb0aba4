// The Upload page, second of three scripts: one package's transfer with tus.
// It keeps trying while the browser is offline, continues where the mirror
// stopped after a reload (tus fingerprints in localStorage, or the mirror's
// list of unfinished uploads), and survives a new sign-in. It adds
// createJob to window.goldmirrorUpload (filled by upload-pick.js).
(function () {
  'use strict';
  const ns = window.goldmirrorUpload;
  if (!ns) return;
  const { el, button, bytes, duration, sentence, fileKey, createImageLinks } = ns;
  const { refreshCsrf, unfinishedById, dropUnfinishedRow, idOf, claim, release } = ns;

  const ENDPOINT = '/api/v1/uploads';
  const CHUNK_BYTES = 64 * 1024 * 1024;
  // Beyond tus' own quick retries, reconnect attempts back off up to this.
  const MAX_RECONNECT_DELAY_MS = 30000;
  const ARCH_LABELS = { arm64: 'Apple silicon', x86_64: 'Intel', unknown: 'architecture unknown' };

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

  /**
   * The upload of `item`, not started: its begin() sends the file. `page` gives the CSRF `headers` (updated in
   * place after a new sign-in), the `finished` map of this tab and `uploadRow(title)`, which adds a row to the list.
   */
  function createJob(item, page) {
    const { headers, finished, uploadRow } = page;
    const tus = window.tus;
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
      if (state === 'signed-out') await refreshCsrf(headers);
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

  ns.createJob = createJob;
})();
