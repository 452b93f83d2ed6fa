// The runtime's ceiling (bench only): a hello-world worker answering a constant JSON.
const BODY = '{"online":1,"tabs":1,"members":0,"guests":1,"idle":0,"pages":[],"window_s":60,"as_of":0}';
export default {
  fetch() {
    return new Response(BODY, { headers: { "content-type": "application/json; charset=utf-8" } });
  },
};
