// edge console: live fragments over Server-Sent Events, source-dependent form fields,
// the camera snapshot refresh, confirmations. No build step; htmx does the forms.
(function () {
  "use strict";
  var body = document.body;
  var page = body.dataset.live;
  if (page && window.EventSource) {
    var es = new EventSource("/live?page=" + encodeURIComponent(page));
    es.onopen = function () { body.dataset.liveReady = "1"; };
    es.onmessage = function (e) {
      var m = JSON.parse(e.data);
      var el = document.getElementById(m.id);
      if (!el) { return; }
      var t = document.createElement("template");
      t.innerHTML = m.html.trim();
      var fresh = t.content.firstElementChild;
      if (!fresh) { return; }
      el.replaceWith(fresh);
      if (window.htmx) { window.htmx.process(fresh); }
    };
  }
  function sync() {
    document.querySelectorAll("[data-show]").forEach(function (el) {
      var rule = el.dataset.show.split("=");
      var sel = document.querySelector('[name="' + rule[0] + '"]');
      if (sel) { el.hidden = rule[1].split("|").indexOf(sel.value) < 0; }
    });
  }
  document.addEventListener("change", sync);
  sync();
  var img = document.getElementById("snapshot");
  if (img) {
    setInterval(function () { img.src = img.dataset.src + "?t=" + Date.now(); }, 2000);
  }
  document.addEventListener("submit", function (e) {
    var msg = e.target.dataset.confirm;
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  }, true);
  document.body.addEventListener("htmx:confirm", function (e) {
    var form = e.target.closest("form");
    var msg = form && form.dataset.confirm;
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  });
})();
