// Copy buttons: copy the value shown in the element named by data-copy, and say so.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  const value = 'value' in field ? field.value : field.textContent.trim();
  if ('select' in field) field.select();
  else window.getSelection().selectAllChildren(field);
  try {
    await navigator.clipboard.writeText(value);
  } catch {
    // Older browsers or insecure origins: fall back to the selection.
    document.execCommand('copy');
  }
  const label = button.textContent;
  button.textContent = 'Copied';
  button.setAttribute('aria-live', 'polite');
  setTimeout(() => (button.textContent = label), 1500);
});
