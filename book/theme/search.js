// Search over every section of every page (search-index.js, written by render.py). Runs from file:// too.
(function () {
  "use strict";
  function words(q) { return q.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; }); }
  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; });
  }
  function snippet(text, terms) {
    var lower = text.toLowerCase(), at = lower.indexOf(terms[0]);
    var start = Math.max(0, at - 60), piece = text.slice(start, start + 220);
    var html = escapeHtml(piece);
    terms.forEach(function (t) {
      var re = new RegExp("(" + t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + ")", "gi");
      html = html.replace(re, "<mark>$1</mark>");
    });
    return (start > 0 ? "… " : "") + html + (start + 220 < text.length ? " …" : "");
  }
  // every word must occur; a hit in the heading or page title counts more than one in the text
  function search(query) {
    var terms = words(query), hits = [];
    if (!terms.length) return hits;
    (window.SEARCH_INDEX || []).forEach(function (s) {
      var head = (s.page + " " + s.heading).toLowerCase(), body = s.text.toLowerCase(), score = 0;
      for (var i = 0; i < terms.length; i++) {
        var inHead = head.indexOf(terms[i]) >= 0, inBody = body.indexOf(terms[i]) >= 0;
        if (!inHead && !inBody) return;
        score += (inHead ? 5 : 0) + (inBody ? 1 : 0);
      }
      hits.push({s: s, score: score});
    });
    hits.sort(function (a, b) { return b.score - a.score; });
    return hits.slice(0, 25);
  }
  function show(query) {
    var box = document.getElementById("search-results");
    var hits = search(query);
    if (!query.trim()) { box.hidden = true; box.innerHTML = ""; return; }
    var terms = words(query);
    box.hidden = false;
    box.innerHTML = "<p><strong>" + hits.length + (hits.length === 25 ? "+" : "") + " results for “" +
      escapeHtml(query) + "”</strong></p>" + (hits.length ? "<ol>" + hits.map(function (h) {
        return '<li><a href="' + h.s.url + '">' + escapeHtml(h.s.heading || h.s.page) + '</a> <span class="where">' +
          escapeHtml(h.s.page) + "</span><br>" + snippet(h.s.text || h.s.heading, terms) + "</li>";
      }).join("") + "</ol>" : "");
  }
  window.courseSearch = search;
  document.addEventListener("DOMContentLoaded", function () {
    var input = document.getElementById("search-box");
    if (!input) return;
    input.addEventListener("input", function () { show(input.value); });
    var q = new URLSearchParams(window.location.search).get("q");
    if (q) { input.value = q; show(q); }
  });
})();
