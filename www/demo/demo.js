// The demo publisher's own script: shows the unlock token (a real site sends it to its server).
document.getElementById('gate').addEventListener('minepass-unlock', (event) => {
  const token = event.detail.token;
  document.getElementById('token').textContent = `${token.slice(0, 24)}…${token.slice(-12)}`;
});
