// Copy buttons: copy the value of the input named by data-copy, and say so.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const input = document.getElementById(button.dataset.copy);
  if (!input) return;
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // Older browsers or insecure origins: fall back to the selection.
    document.execCommand('copy');
  }
  const label = button.textContent;
  button.textContent = 'Copied';
  button.setAttribute('aria-live', 'polite');
  setTimeout(() => (button.textContent = label), 1500);
});
