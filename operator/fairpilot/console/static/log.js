// The live stage log: Server-Sent Events from the console's /log route, one line per message.
// The browser reconnects by itself while the resource has no pod yet (the server's `retry`).
(function () {
  "use strict";
  const box = document.getElementById("log");
  const status = document.getElementById("log-status");
  if (!box || !window.EventSource) return;
  const source = new EventSource(box.dataset.source);
  let pod = null;
  const append = (text) => {
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.append(text + "\n");
    if (atEnd) box.scrollTop = box.scrollHeight;
  };
  source.addEventListener("pod", (event) => {
    box.textContent = "";  // every connection sends the pod's log from its start
    pod = event.data;
    status.textContent = "pod " + pod + ": following";
  });
  source.addEventListener("status", (event) => { status.textContent = event.data; });
  source.addEventListener("end", (event) => {
    status.textContent = event.data;
    source.close();
  });
  source.onmessage = (event) => append(event.data);
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) status.textContent = "disconnected";
  };
})();
