// The demo publisher's own script: shows the unlock token (a real site sends it to its server). The
// event fires once the sealed second half is decrypted and in the page.
document.getElementById('gate').addEventListener('minepass-unlock', (event) => {
  const token = event.detail.token;
  const slot = document.getElementById('token');
  if (slot) slot.textContent = `${token.slice(0, 24)}…${token.slice(-12)}`;
});
