(function () {
  "use strict";
  var table = document.getElementById("results");
  if (!table) { return; }
  var body = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  function key(row, index, numeric) {
    var value = row.cells[index].getAttribute("data-sort") || row.cells[index].textContent;
    return numeric ? Number(value) : value.toLowerCase();
  }
  function sortBy(index) {
    var header = headers[index];
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, index, numeric), y = key(b, index, numeric);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(headers, function (header, index) {
    var button = header.querySelector("button");
    if (button) { button.addEventListener("click", function () { sortBy(index); }); }
  });
})();
