// Click a column header to sort a table; numbers by value, text alphabetically.
(function () {
  "use strict";
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var body = table.tBodies[0];
    if (!body) { return; }
    table.querySelectorAll("thead th").forEach(function (header, column) {
      var ascending = true;
      header.title = "Sort";
      header.addEventListener("click", function () {
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column], y = b.cells[column];
          var xs = x && x.dataset.sort, ys = y && y.dataset.sort;
          var result = (xs !== undefined && ys !== undefined)
            ? parseFloat(xs) - parseFloat(ys)
            : (x ? x.textContent : "").localeCompare(y ? y.textContent : "");
          return ascending ? result : -result;
        });
        ascending = !ascending;
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
