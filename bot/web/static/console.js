// Engage console: small progressive enhancements, no framework.
// - campaign form: live audience count (POST /api/v1/campaigns/audience)
// - campaign page: poll /api/v1/campaigns/{id}/stats while the campaign is live
// - confirm dangerous buttons
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf") || "";

  function api(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRF-Token"] = csrf;
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    });
  }

  // -- live audience count
  var form = document.getElementById("campaign-form");
  var countEl = document.getElementById("audience-count");
  if (form && countEl) {
    var timer = null;
    var checked = function (name) {
      return Array.prototype.map.call(form.querySelectorAll('input[name="' + name + '"]:checked'), function (i) { return i.value; });
    };
    var refresh = function () {
      var audience = { tiers: checked("tiers"), products: checked("products"), languages: checked("languages"),
        regions: form.regions.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean) };
      if (form.expiring_from.value) { audience.expiring_from = form.expiring_from.value; }
      if (form.expiring_to.value) { audience.expiring_to = form.expiring_to.value; }
      if (form.has_telegram.value) { audience.has_telegram = form.has_telegram.value === "yes"; }
      api("POST", countEl.getAttribute("data-url"), audience).then(function (res) {
        countEl.textContent = res.ok ? String(res.data.audience) : "—";
        countEl.setAttribute("data-ready", "yes");
      });
    };
    var schedule = function () { clearTimeout(timer); timer = setTimeout(refresh, 250); };
    document.getElementById("audience").addEventListener("change", schedule);
    document.getElementById("audience").addEventListener("input", schedule);
    refresh();
  }

  // -- campaign progress
  var stats = document.getElementById("stats");
  if (stats && stats.getAttribute("data-live") === "yes") {
    var keys = ["enqueued", "queued", "held", "sent", "delivered", "failed", "unknown", "skipped"];
    var poll = function () {
      api("GET", stats.getAttribute("data-url")).then(function (res) {
        if (!res.ok) { return; }
        var s = res.data;
        keys.forEach(function (k) {
          var el = document.getElementById("stat-" + k);
          if (el) { el.textContent = String(s[k]); }
        });
        document.getElementById("enqueue-progress").value = s.enqueue_progress;
        document.getElementById("delivery-progress").value = s.delivery_progress;
        var badge = document.getElementById("campaign-status");
        if (badge && badge.getAttribute("data-status") !== s.status) {
          // a new state (done, failed, paused elsewhere): the page says it in words
          window.location.reload();
          return;
        }
        var reasons = document.getElementById("skipped-reasons");
        if (reasons) {
          // the page's words for each reason code (never the code itself)
          var labels = JSON.parse(reasons.getAttribute("data-labels") || "{}");
          var other = reasons.getAttribute("data-other") || "{code}";
          reasons.textContent = "";
          Object.keys(s.skipped_by_reason).sort().forEach(function (r) {
            var li = document.createElement("li");
            li.textContent = (labels[r] || other.replace("{code}", r)) + ": " + s.skipped_by_reason[r];
            reasons.appendChild(li);
          });
        }
        if (s.status === "done" || s.status === "cancelled") { stats.setAttribute("data-live", "no"); return; }
        setTimeout(poll, 1500);
      });
    };
    setTimeout(poll, 500);
  }

  // -- confirmations
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.getAttribute && target.getAttribute("data-confirm")) {
      if (!window.confirm(target.getAttribute("data-confirm"))) { event.preventDefault(); }
    }
  });
})();
