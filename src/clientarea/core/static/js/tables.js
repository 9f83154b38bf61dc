// Small screens show a table as stacked cards (app.css, `table.stack`), each cell labelled
// by its column through a data-label attribute. Templates give their list tables those
// labels themselves; this fills them in for any other table with a header row, so that it
// stacks too instead of hiding columns off screen.
(function () {
  "use strict";
  var tables = document.querySelectorAll(".table-wrap > table:not(.stack)");
  Array.prototype.forEach.call(tables, function (table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head) {
      return;
    }
    var labels = Array.prototype.map.call(head.cells, function (cell) {
      var hidden = cell.querySelector(".visually-hidden");
      return hidden && hidden.textContent === cell.textContent ? "" : cell.textContent.trim();
    });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        Array.prototype.forEach.call(row.cells, function (cell, i) {
          if (labels[i] && !cell.hasAttribute("data-label") && cell.colSpan === 1) {
            cell.setAttribute("data-label", labels[i]);
          }
        });
      });
    });
    table.classList.add("stack");
  });
})();
