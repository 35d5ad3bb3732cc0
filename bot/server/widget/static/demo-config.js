// Configuration of the chat widget on the demo page (/chat/). It lives in its own file because the
// page's Content-Security-Policy allows no inline scripts; on your own site an inline
// <script>window.BankFeedChat = {...}</script> works just as well.
window.BankFeedChat = {
  serverUrl: window.location.origin,
  title: "Bank feed help",
  subtitle: "Ledgerline support · QuickBooks Online",
  primaryColor: "#108000",
  textColor: "#ffffff",
  startOpen: false,
};
