/* Entry of /join/<code>/: a student's way in. The room's run opens as the run page in follow
   mode (classroom.js); before the instructor has a run, wait on the room socket for one. */
import "./health.js";
import { followUrl, socketUrl } from "./room-protocol.js";

const boot = JSON.parse(document.getElementById("room-boot").textContent);
const status = document.getElementById("room-status");

function go(run) {
  window.location.replace(followUrl(run, boot.code));
}

if (boot.run) {
  go(boot.run);
} else {
  const ws = new WebSocket(socketUrl(boot.ws, window.location));
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "follow" && message.run) go(message.run);
    if (message.type === "error") status.textContent = `✗ ${message.error}`;
  });
  ws.addEventListener("close", () => { status.textContent = "✗ Lost the connection to the room; reload this page to try again."; });
}
