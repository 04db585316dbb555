(function () {
  "use strict";
  var overlay = document.getElementById("overlay");
  var select = document.getElementById("map-select");
  var slider = document.getElementById("opacity");
  var shown = document.getElementById("opacity-value");
  var reading = document.getElementById("map-reading");
  var boxes = document.getElementById("boxes");
  var toggle = document.getElementById("show-boxes");
  if (overlay && slider) {
    var setOpacity = function () {
      overlay.style.opacity = slider.value;
      if (shown) { shown.textContent = Math.round(Number(slider.value) * 100) + " %"; }
    };
    slider.addEventListener("input", setOpacity);
    setOpacity();
  }
  if (overlay && select) {
    select.addEventListener("change", function () {
      var option = select.options[select.selectedIndex];
      overlay.src = option.getAttribute("data-src");
      overlay.alt = "Map overlay: " + option.text;
      if (reading) { reading.textContent = option.getAttribute("data-reading"); }
    });
  }
  if (boxes && toggle) {
    toggle.addEventListener("change", function () { boxes.style.display = toggle.checked ? "" : "none"; });
  }
})();
