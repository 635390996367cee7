// The run page's live part is swapped every second while the run moves: keep the stages a
// reader opened open across swaps (htmx would otherwise put them back closed).
(function () {
  var open = new Set();
  document.addEventListener("htmx:beforeSwap", function () {
    open = new Set(Array.from(document.querySelectorAll("details[open][id]"), function (d) { return d.id; }));
  });
  document.addEventListener("htmx:afterSwap", function () {
    open.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) { d.open = true; }
    });
  });
})();
