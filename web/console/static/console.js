// OMBARO Ops console: live regions and confirmations, no library.
// An element with data-refresh="<url>" is re-fetched every data-every seconds (default 2) and its
// inner HTML replaced, while data-live="true" (the server stops it once nothing is running).
(function () {
  function poll(el) {
    var every = (parseFloat(el.dataset.every) || 2) * 1000;
    setTimeout(function () {
      if (el.dataset.live !== "true" || document.hidden) { if (el.dataset.live === "true") poll(el); return; }
      fetch(el.dataset.refresh, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
        .then(function (r) { if (r.status === 401 || r.redirected) { location.reload(); return null; } return r.text(); })
        .then(function (html) {
          if (html === null) return;
          var box = document.createElement("div"); box.innerHTML = html;
          var fresh = box.firstElementChild;
          if (fresh) { el.innerHTML = fresh.innerHTML; el.dataset.live = fresh.dataset.live; }
          // A page whose content depends on the outcome (a preview, a result table) reloads once done.
          if (el.dataset.live !== "true" && el.dataset.reloadWhenDone !== undefined) { location.reload(); return; }
          poll(el);
        })
        .catch(function () { poll(el); });
    }, every);
  }
  document.querySelectorAll("[data-refresh]").forEach(poll);
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
