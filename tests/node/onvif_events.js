// npm `onvif` receiving camera events the way Scrypted and Shinobi do: cam.on('event') runs the
// library's own PullPoint loop (CreatePullPointSubscription PT2M, PullMessages PT1M, Renew after
// every pull, Unsubscribe once no listener is left).
//
//   node onvif_events.js HOST PORT USER PASS COUNT
//
// Prints "subscribed" on stderr once the first pull is under way, then collects COUNT events,
// removes its listener, waits for the library's Unsubscribe, and prints ONE JSON object on
// stdout: {"events": [{topic, operation, source, data}], "trace": [...]} or {"error": "..."}
// (exit status 1). Bounded: exits after 45 s.
'use strict';

const { Cam } = require('onvif');

const [hostname, port, username, password, countArg] = process.argv.slice(2);
const wanted = Number(countArg || 1);
const events = [];
const trace = [];
let done = false;

function finish(result, code) {
	if (done) {
		return;
	}
	done = true;
	result.trace = trace;
	process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

function fail(err) {
	finish({ error: err && err.message ? err.message : String(err) }, 1);
}

setTimeout(() => fail('timeout: ' + events.length + ' of ' + wanted + ' events in 45 s'), 45000).unref();
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

function operation(xml) {
	const m = /<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?([\w-]+)/.exec(xml || '');
	return m ? m[1] : '?';
}

// SimpleItems as the library's xml2js/linerase gives them: one object or an array of them.
function items(group) {
	if (!group || !group.simpleItem) {
		return {};
	}
	const list = Array.isArray(group.simpleItem) ? group.simpleItem : [group.simpleItem];
	const out = {};
	list.forEach((item) => {
		out[item.$.Name] = String(item.$.Value);
	});
	return out;
}

const cam = new Cam(
	{ hostname, port: Number(port), username, password, timeout: 10000 },
	function (err) {
		if (err) {
			return fail(err);
		}
		this.on('event', (message) => {
			const body = message.message.message;
			events.push({
				topic: typeof message.topic === 'object' ? message.topic._ : message.topic,
				operation: body.$ && body.$.PropertyOperation,
				source: items(body.source),
				data: items(body.data),
			});
			if (events.length >= wanted) {
				// The library unsubscribes by itself once the current round (Renew) is done.
				this.removeAllListeners('event');
				const wait = setInterval(() => {
					if (!this.events.subscription && trace.some((t) => t.response === 'UnsubscribeResponse')) {
						clearInterval(wait);
						finish({ events }, 0);
					}
				}, 50);
			}
		});
	},
);

cam.on('rawRequest', (xml) => {
	trace.push({ request: operation(xml) });
	if (operation(xml) === 'PullMessages') {
		process.stderr.write('subscribed\n');
	}
});
cam.on('rawResponse', (xml, status) => trace.push({ response: operation(xml), status }));
cam.on('eventsError', (e) => trace.push({ eventsError: String(e) }));
