// Engage console, conversations inbox: what changes without a reload.
// - thread page: new messages (GET /api/v1/conversations/{id}?after=<last id>, polled),
//   the SMS segment count of the reply being typed (GET …/preview), quick replies
// - inbox page: the tabs' counts and the list, refreshed when they change
(function () {
  "use strict";

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; });
  }

  function every(seconds, work) {
    var ms = Math.max(1, Number(seconds) || 5) * 1000;
    var tick = function () { work().then(function () { setTimeout(tick, ms); }); };
    setTimeout(tick, ms);
  }

  // -- thread: new messages
  var list = document.getElementById("messages");
  if (list) {
    var labels = { customer: list.getAttribute("data-author-customer"),
                   bot: list.getAttribute("data-author-bot") };
    list.scrollTop = list.scrollHeight;
    every(list.getAttribute("data-poll"), function () {
      var url = list.getAttribute("data-url") + "?after=" + list.getAttribute("data-last");
      return getJson(url).then(function (thread) {
        if (!thread) { return; }
        thread.messages.forEach(function (m) {
          if (document.getElementById("msg-" + m.id)) { return; }
          var li = document.createElement("li");
          li.className = "msg " + m.author + " new";
          li.id = "msg-" + m.id;
          var who = document.createElement("span");
          who.className = "who";
          who.textContent = (m.operator || labels[m.author] || "") + " · " +
            new Date(m.created_at).toLocaleString();
          var text = document.createElement("span");
          text.className = "text";
          text.textContent = m.body || "[" + m.kind + "]";
          li.appendChild(who);
          li.appendChild(text);
          list.appendChild(li);
          list.setAttribute("data-last", String(m.id));
        });
        if (thread.messages.length) { list.scrollTop = list.scrollHeight; }
      });
    });
  }

  // -- thread: segment count and quick replies
  var box = document.getElementById("reply-text");
  var info = document.getElementById("reply-info");
  if (box && info) {
    var timer = null;
    var count = function () {
      if (info.getAttribute("data-channel") !== "sms" || !box.value.trim()) {
        info.textContent = "";
        return;
      }
      var url = info.getAttribute("data-url") + "?text=" + encodeURIComponent(box.value);
      getJson(url).then(function (preview) {
        if (preview && preview.segments !== null) {
          info.textContent = info.getAttribute("data-template").replace("{count}", String(preview.segments));
          info.setAttribute("data-segments", String(preview.segments));
        }
      });
    };
    box.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(count, 250); });
    Array.prototype.forEach.call(document.querySelectorAll(".quick-reply"), function (button) {
      button.addEventListener("click", function () {
        box.value = button.getAttribute("data-text");
        box.focus();
        count();
      });
    });
  }

  // -- inbox: counts and list
  var tabs = document.getElementById("inbox-tabs");
  if (tabs) {
    var seen = null;
    every(tabs.getAttribute("data-poll"), function () {
      return getJson(tabs.getAttribute("data-url")).then(function (counts) {
        if (!counts) { return; }
        var now = JSON.stringify(counts);
        if (seen !== null && now !== seen) {
          // something changed: take the fresh list and tabs from the page itself
          return fetch(window.location.href, { credentials: "same-origin" })
            .then(function (r) { return r.text(); })
            .then(function (html) {
              var fresh = new DOMParser().parseFromString(html, "text/html");
              ["inbox-tabs", "inbox-list", "inbox-empty"].forEach(function (id) {
                var old = document.getElementById(id);
                var next = fresh.getElementById(id);
                if (old && next) { old.replaceWith(next); tabs = id === "inbox-tabs" ? next : tabs; }
                else if (old && !next) { old.remove(); }
                else if (!old && next) { document.querySelector("main").appendChild(next); }
              });
              seen = now;
            });
        }
        seen = now;
      });
    });
  }
})();
