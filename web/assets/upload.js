// Resumable uploads with tus-js-client: progress, speed, time left, retry after
// a dropped connection, cancel. Without JavaScript the form posts normally.
(function () {
  const form = document.getElementById('upload-form');
  const list = document.getElementById('uploads');
  if (!form || !list || !window.tus || !window.tus.isSupported) return;
  document.getElementById('upload-hint').textContent = 'You can start another upload while one is running.';
  const csrf = form.dataset.csrf;

  function text(el, value) {
    el.textContent = value;
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
  function friendly(error) {
    const res = error && error.originalResponse;
    if (res) {
      try {
        const body = JSON.parse(res.getBody());
        if (body && body.error && body.error.message) return body.error.message;
      } catch {
        // not JSON
      }
      if (res.getStatus() === 401) return 'Your session ended; sign in again.';
    }
    return 'The upload failed: ' + (error && error.message ? error.message.split('\n')[0] : 'unknown error');
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = form.elements.package.files[0];
    if (!file) return;
    const checksumFile = form.elements.checksum.files[0];
    const checksum = checksumFile ? (await checksumFile.text()).slice(0, 4096) : '';

    const row = document.createElement('div');
    row.className = 'upload-row';
    const title = document.createElement('div');
    text(title, file.name + ' (' + bytes(file.size) + ')' + (checksumFile ? ', checked against ' + checksumFile.name : ''));
    const bar = document.createElement('progress');
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute('aria-label', 'Upload progress of ' + file.name);
    const status = document.createElement('div');
    status.className = 'muted upload-status';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'secondary';
    text(cancel, 'Cancel');
    row.append(title, bar, status, cancel);
    list.prepend(row);
    form.reset();

    let lastBytes = 0;
    let lastTime = performance.now();
    let rate = 0;
    const upload = new window.tus.Upload(file, {
      endpoint: '/api/v1/uploads',
      headers: { 'X-CSRF-Token': csrf },
      metadata: { filename: file.name, checksum: checksum },
      chunkSize: 64 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000],
      removeFingerprintOnSuccess: true,
      onProgress(sent, total) {
        const now = performance.now();
        const dt = (now - lastTime) / 1000;
        if (dt >= 0.5) {
          const current = (sent - lastBytes) / dt;
          rate = rate === 0 ? current : rate * 0.7 + current * 0.3;
          lastBytes = sent;
          lastTime = now;
        }
        const percent = total ? (sent / total) * 100 : 0;
        bar.value = percent;
        text(status, Math.floor(percent) + '% · ' + bytes(sent) + ' of ' + bytes(total) + (rate > 0 ? ' · ' + bytes(rate) + '/s · ' + duration((total - sent) / rate) + ' left' : ''));
      },
      onSuccess(payload) {
        bar.value = 100;
        const sha = payload.lastResponse.getHeader('Upload-Sha256');
        status.className = 'upload-status';
        status.innerHTML = '';
        const done = document.createElement('span');
        // "Verified" only when a checksum file was compared; otherwise say that nothing was.
        text(done, checksum.trim() ? '100% · stored and verified. ' : '100% · stored (no checksum file: its SHA-256 was not compared with anything). ');
        const link = document.createElement('a');
        link.href = '/admin/blobs/' + sha;
        text(link, 'SHA-256 ' + sha);
        status.append(done, link);
        cancel.remove();
      },
      onError(error) {
        status.className = 'field-error upload-status';
        text(status, friendly(error));
        text(cancel, 'Dismiss');
        cancel.onclick = () => row.remove();
      },
    });
    cancel.onclick = () => {
      upload.abort(true).then(() => {
        status.className = 'muted upload-status';
        text(status, 'Cancelled; nothing was stored.');
        text(cancel, 'Dismiss');
        cancel.onclick = () => row.remove();
      });
    };
    const previous = await upload.findPreviousUploads();
    if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
    upload.start();
  });
})();
