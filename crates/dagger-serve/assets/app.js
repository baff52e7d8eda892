// Dagger web interface: live updates over server-sent events, and two small
// conveniences. The browser never polls: the server pushes what changed.
"use strict";
(function () {
  var graph = document.querySelector(".graph");
  document.querySelectorAll("[data-fit-toggle]").forEach(function (b) {
    b.addEventListener("click", function () { if (graph) graph.classList.toggle("fit"); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
  });

  var root = document.getElementById("run");
  if (!root || !root.dataset.live || !window.EventSource) return;
  var reloading = false;
  function reload() { if (!reloading) { reloading = true; window.location.reload(); } }

  function setStatusClass(el, status) {
    el.className = el.className.replace(/\bs-\w+/g, "").trim() + " s-" + status;
  }

  function applyNode(n) {
    var g = document.querySelector('g.gnode[data-i="' + n.i + '"]');
    if (g) g.setAttribute("class", g.getAttribute("class").replace(/\bs-\w+/, "s-" + n.status));
    var row = document.querySelector('tr[data-i="' + n.i + '"]');
    if (row) {
      var badge = row.querySelector(".st .badge");
      badge.textContent = n.status;
      setStatusClass(badge, n.status);
      row.querySelector(".at").textContent = n.attempts;
      row.querySelector(".du").textContent = n.duration;
      row.querySelector(".er").textContent = n.error || "";
    }
    var human = document.querySelector('[data-human="' + n.i + '"]');
    if (n.status === "WaitingForHuman" && !human) reload();
    if (n.status !== "WaitingForHuman" && human) {
      human.hidden = true;
      var section = document.querySelector("section.waiting");
      if (section && !section.querySelector("[data-human]:not([hidden])")) section.hidden = true;
    }
  }

  function applyRun(r) {
    if (r.node_count !== Number(root.dataset.nodeCount)) { reload(); return; }
    var badge = document.getElementById("run-status");
    badge.textContent = r.status;
    setStatusClass(badge, r.status);
    root.dataset.status = r.status;
    document.getElementById("run-duration").textContent = r.duration;
    document.getElementById("run-reason").textContent = r.reason || "";
    document.querySelectorAll("[data-when]").forEach(function (el) {
      el.hidden = el.dataset.when.split(" ").indexOf(r.status) < 0 || (r.resuming && el.action && /\/resume$/.test(el.action));
    });
    var note = document.getElementById("resuming");
    if (note && !r.resuming) note.hidden = true;
  }

  var source = new EventSource(root.dataset.live);
  source.addEventListener("nodes", function (e) { JSON.parse(e.data).forEach(applyNode); });
  source.addEventListener("run", function (e) { applyRun(JSON.parse(e.data)); });
  source.addEventListener("end", function () { source.close(); root.dataset.liveState = "ended"; });
  source.addEventListener("failure", function (e) {
    source.close();
    root.dataset.liveState = "failed";
    document.getElementById("run-reason").textContent = "live updates stopped: " + JSON.parse(e.data).error;
  });
})();
