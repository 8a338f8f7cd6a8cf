// Rating pages: play/replay, unlock the scale once the clip has been heard to the end,
// count plays, number-key shortcuts, and no double submission. Without JavaScript the
// plain form still works (the server validates every submission).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("rating-form");
  var audio = document.getElementById("stimulus");
  var play = document.getElementById("play");
  if (!form || !audio || !play) { return; }
  var status = document.getElementById("audio-status");
  var plays = document.getElementById("plays");
  var next = document.getElementById("next");
  var radios = form.querySelectorAll("input[name=rating]");
  var heard = false;
  var sent = false;

  function setScale(enabled) {
    radios.forEach(function (r) { r.disabled = !enabled; });
    update();
  }
  function chosen() {
    return form.querySelector("input[name=rating]:checked") !== null;
  }
  function update() {
    next.disabled = sent || !heard || !chosen();
  }
  setScale(false);
  form.dataset.ready = "0";

  play.addEventListener("click", function () {
    audio.currentTime = 0;
    var started = audio.play();
    if (started && started.catch) {
      started.catch(function (err) { status.textContent = "Could not play the clip: " + err.message; });
    }
  });
  audio.addEventListener("play", function () {
    plays.value = String(parseInt(plays.value, 10) + 1);
    play.innerHTML = "&#8635; Replay";
    status.textContent = "Playing\u2026";
  });
  audio.addEventListener("ended", function () {
    status.textContent = heard ? "Finished. Replay or choose a rating." : "Now choose a rating.";
    if (!heard) { heard = true; setScale(true); form.dataset.ready = "1"; }
  });
  audio.addEventListener("error", function () {
    status.textContent = "The clip could not be loaded. Please reload the page.";
  });
  radios.forEach(function (r) { r.addEventListener("change", update); });
  document.addEventListener("keydown", function (ev) {
    if (!heard || ev.altKey || ev.ctrlKey || ev.metaKey) { return; }
    var r = document.getElementById("rating-" + ev.key);
    if (r) { r.checked = true; update(); }
  });
  form.addEventListener("submit", function (ev) {
    if (sent || !heard || !chosen()) { ev.preventDefault(); return; }
    sent = true;
    update();
  });
});
