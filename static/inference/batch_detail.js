// Poll the small status partial every 2 s and swap it in; stop once the batch has finished.
// A static file, not an inline script: the Content-Security-Policy allows scripts from 'self' only.
(function () {
  const box = document.getElementById("batch-status");
  if (!box) return;
  async function poll() {
    if (box.querySelector("[data-finished='1']")) return;
    try {
      const response = await fetch(box.dataset.url, {headers: {"X-Requested-With": "fetch"}});
      if (response.ok) box.innerHTML = await response.text();
    } catch (err) { /* network blip: try again on the next tick */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
