// The reader page's actions without a reload. Every form works without this script too
// (a plain post, then back to the page); with it, the card changes in place.
// Same-origin only: the CSRF token travels in a header, the session in its HttpOnly cookie.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function post(fields, keepalive) {
    var body = new URLSearchParams(fields);
    body.set("key", newKey());  // a retry of this very action is stored once
    return fetch("/page/events", {
      method: "POST", body: body, credentials: "same-origin", keepalive: !!keepalive,
      headers: {"Accept": "application/json", "X-CSRF-Token": csrf}
    }).then(function (r) {
      if (!r.ok) throw new Error("action refused: " + r.status);
      return r.json();
    });
  }

  function cardFields(card, kind) {
    var form = card.querySelector("form.card-form");
    return {paper_id: form.elements.paper_id.value, request_id: form.elements.request_id.value,
            kind: kind};
  }

  function setUpvoted(card, on) {
    var button = card.querySelector("button.vote");
    var count = button.querySelector(".count");
    card.classList.toggle("upvoted", on);
    button.value = on ? "remove_upvote" : "upvote";
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.title = on ? "Undo upvote" : "Upvote";
    count.textContent = String(parseInt(count.getAttribute("data-base"), 10) + (on ? 1 : 0));
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("act")) return;
    ev.preventDefault();
    var submitter = ev.submitter;
    var kind = submitter && submitter.name === "kind" ? submitter.value : form.elements.kind.value;
    var fields = {paper_id: form.elements.paper_id.value, kind: kind,
                  request_id: form.elements.request_id ? form.elements.request_id.value : ""};
    var card = form.closest(".card");
    form.classList.add("busy");
    post(fields).then(function () {
      form.classList.remove("busy");
      if (!card) {
        window.location.reload();  // a hidden paper is back: shown where the ranking puts it
      } else if (kind === "upvote" || kind === "remove_upvote") {
        setUpvoted(card, kind === "upvote");
      } else if (kind === "dismiss") {
        card.classList.add("dismissed");
      } else if (kind === "remove_dismiss") {
        card.classList.remove("dismissed");
      }
    }).catch(function () {
      // Fall back to the plain post, which shows what went wrong.
      form.classList.remove("busy");
      var input = document.createElement("input");
      input.type = "hidden"; input.name = "kind"; input.value = kind;
      form.appendChild(input);
      form.submit();
    });
  });

  // Opening a paper: its page (the title link) is a click, unfolding the abstract a read.
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest ? ev.target.closest("a.paper-link") : null;
    if (!link) return;
    var card = link.closest(".card");
    if (card && document.querySelector("#signed-in-as")) {
      post(cardFields(card, "click"), true).catch(function () {});
    }
  });
  document.querySelectorAll("details.abstract").forEach(function (d) {
    d.addEventListener("toggle", function () {
      var card = d.closest(".card");
      if (!d.open || d.dataset.logged || !document.querySelector("#signed-in-as")) return;
      d.dataset.logged = "1";
      post(cardFields(card, "read")).then(function () {
        d.classList.add("logged");
      }).catch(function () { delete d.dataset.logged; });
    });
  });
})();
