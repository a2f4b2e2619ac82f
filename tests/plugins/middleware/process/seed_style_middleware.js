// The same pattern with GoReplay's Node.js package (npm goreplay_middleware): a request
// registers its id's response callback, the response its replay callback. Appends "ID same|diff"
// to the file named by argv[2] per replay compared. Responses and replays are not written back
// (the callbacks return nothing), requests are.
const fs = require("fs");
const gor = require("goreplay_middleware");
const out = process.argv[2];
gor.init();
gor.on("request", function (req) {
  gor.on("response", req.ID, function (resp) {
    gor.on("replay", req.ID, function (repl) {
      const same = gor.httpStatus(repl.http) === gor.httpStatus(resp.http) &&
        gor.httpBody(repl.http).toString() === gor.httpBody(resp.http).toString();
      fs.appendFileSync(out, req.ID + (same ? " same\n" : " diff\n"));
    });
  });
  return req;
});
