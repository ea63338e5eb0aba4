// Golden image form: picking a package ticks "Enable" for its architecture
// (and clearing it unticks it), and a package marked for the other
// architecture is flagged at once. The server checks the same on save.
(function () {
  for (const select of document.querySelectorAll('select[data-slot]')) {
    const slot = select.dataset.slot;
    const enable = document.getElementById(slot + '-enabled');
    const warning = document.getElementById(slot + '-arch-warning');
    select.addEventListener('change', () => {
      if (enable) enable.checked = select.value !== '';
      if (!warning) return;
      const option = select.selectedOptions[0];
      const arch = option ? option.dataset.arch : undefined;
      const wrong = select.value !== '' && arch !== undefined && arch !== 'unknown' && arch !== slot;
      warning.hidden = !wrong;
      warning.textContent = wrong
        ? 'This package is marked for ' + warning.dataset.other + ', not ' + warning.dataset.label + '.'
        : '';
    });
  }
})();
