// The runs table and a run's live part are swapped every few seconds. Two things keep those swaps
// from getting in a reader's way:
// - stages a reader opened stay open across swaps (htmx would otherwise put them back closed);
// - a swap that would replace what the pointer is pressing waits for the next one: a link replaced
//   between its mousedown and its mouseup never gets the click, and the reader's click is lost.
(function () {
  var open = new Set();
  var pressed = null;
  document.addEventListener("pointerdown", function (evt) { pressed = evt.target; }, true);
  document.addEventListener("pointerup", function () { pressed = null; }, true);
  document.addEventListener("pointercancel", function () { pressed = null; }, true);
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    if (pressed && target && target.contains(pressed)) {
      evt.detail.shouldSwap = false;
      return;
    }
    open = new Set(Array.from(document.querySelectorAll("details[open][id]"), function (d) { return d.id; }));
  });
  document.addEventListener("htmx:afterSwap", function () {
    open.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) { d.open = true; }
    });
  });
})();
