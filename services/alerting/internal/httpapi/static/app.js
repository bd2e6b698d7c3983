// Keyboard shortcuts of the case page: f / l / u label, c claims. Keys typed into a field are
// left alone.
document.addEventListener("keydown", function (e) {
  var t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
  var labels = { f: "fraud", l: "legitimate", u: "unsure" };
  var form = document.getElementById("label-form");
  if (form && labels[e.key]) {
    var radio = document.getElementById("label-" + labels[e.key]);
    if (radio) {
      radio.checked = true;
      e.preventDefault();
      form.requestSubmit();
    }
    return;
  }
  if (e.key === "c") {
    var claim = document.getElementById("claim");
    if (claim) {
      e.preventDefault();
      claim.click();
    }
  }
});
