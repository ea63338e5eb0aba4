// The Upload page with JavaScript, last of three scripts (after upload-pick.js
// and upload-tus.js): one drop zone (and a picker) for packages and their
// checksum files, paired by name; a checksum file is read, and the mirror
// asked for its digest, before any byte is sent. A file already uploading is
// never sent twice. Without JavaScript the form posts normally.
(function () {
  'use strict';
  const form = document.getElementById('upload-form');
  const list = document.getElementById('uploads');
  const ns = window.goldmirrorUpload;
  if (!form || !list || !window.tus || !window.tus.isSupported || !ns || !ns.createJob) return;
  const { el, button, bytes, fileKey, stem, kind, guessArch, createImageLinks } = ns;
  const { unfinishedRows, claimedElsewhere, claim, release, check, createJob } = ns;

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

  // --- one upload per file across this browser's tabs -------------------------

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
    for (const item of touched) item.checked = check(item, finished);
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

  // --- the list of uploads -----------------------------------------------------

  async function startItem(item) {
    if (item.other || item.problem) return failedRow(item, item.problem);
    if (item.stored) return storedRow(item);
    if (!item.file) {
      const want = item.checksumFile.name.replace(/\.txt$/i, '.pvmp');
      const message = `${item.checksumFile.name} is a checksum file, not a package: add ${want}, the package it belongs to, and upload both together.`;
      return failedRow(item, message);
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
    const job = createJob(item, { headers, finished, uploadRow });
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
