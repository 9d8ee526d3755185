// FairPilot report behaviour: sortable tables, open details when printing, contents highlight.
(function () {
  "use strict";

  function sortTable(table, column, header) {
    var body = table.tBodies[0];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, index) {
      var cell = row.cells[column];
      var raw = cell ? cell.getAttribute("data-sort") : null;
      var missing = !cell || cell.classList.contains("missing");
      return {
        row: row,
        index: index,
        missing: missing,
        number: raw === null ? null : parseFloat(raw),
        text: cell ? cell.textContent : ""
      };
    });
    keyed.sort(function (a, b) {
      if (a.missing !== b.missing) { return a.missing ? 1 : -1; }  // blanks always last
      var result;
      if (a.number !== null && b.number !== null) {
        result = a.number - b.number;
      } else {
        result = a.text.localeCompare(b.text, undefined, { numeric: true, sensitivity: "base" });
      }
      if (!ascending) { result = -result; }
      return result || a.index - b.index;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var fragment = document.createDocumentFragment();
    keyed.forEach(function (item) { fragment.appendChild(item.row); });
    body.appendChild(fragment);
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      var button = header.querySelector("button.sort");
      if (!button) { return; }
      button.title = "Sort by this column";
      button.addEventListener("click", function () { sortTable(table, column, header); });
    });
  });

  // Closed <details> would print as their summary alone.
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details:not([open])"), function (d) {
      d.setAttribute("open", "");
      d.setAttribute("data-print-opened", "");
    });
  });
  window.addEventListener("afterprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details[data-print-opened]"), function (d) {
      d.removeAttribute("open");
      d.removeAttribute("data-print-opened");
    });
  });

  // Highlight the contents entry of the section in view.
  var links = document.querySelectorAll(".toc a");
  if (links.length && "IntersectionObserver" in window) {
    var byId = {};
    Array.prototype.forEach.call(links, function (link) {
      byId[decodeURIComponent(link.getAttribute("href").slice(1))] = link;
    });
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) { return; }
        Array.prototype.forEach.call(links, function (link) { link.classList.remove("active"); });
        var link = byId[entry.target.id];
        if (link) { link.classList.add("active"); }
      });
    }, { rootMargin: "0px 0px -70% 0px" });
    Array.prototype.forEach.call(document.querySelectorAll("main > section[id]"), function (s) {
      observer.observe(s);
    });
  }
})();
