// npm `onvif` (the library of Scrypted, Shinobi and older UniFi Protect) adding a camera, as a
// real third-party client for vcam's tests.
//
//   node onvif_client.js HOST PORT USER PASS [digest]
//
// With "digest" the library sends no WS-Security header (useWSSecurity: false) and answers the
// server's HTTP Digest challenge instead.
//
// Connects the way those applications do (new Cam -> connect: GetSystemDateAndTime,
// GetServices, GetProfiles + GetVideoSources), then GetStreamUri(RTSP), GetSnapshotUri and
// GetDeviceInformation. Prints ONE JSON object on stdout: the results, or {"error": "..."} (exit
// status 1). Every SOAP request and response is kept in "trace" (operation names and HTTP
// status only) so a failing test shows what the library asked for. Bounded: exits after 30 s.
'use strict';

const { Cam } = require('onvif');

const [hostname, port, username, password, auth] = process.argv.slice(2);
const trace = [];
const warnings = [];
let done = false;

function finish(result, code) {
	if (done) {
		return;
	}
	done = true;
	result.trace = trace;
	result.warnings = warnings;
	process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

function fail(err) {
	finish({ error: err && err.message ? err.message : String(err) }, 1);
}

if (!hostname || !port) {
	fail('usage: node onvif_client.js HOST PORT USER PASS [digest]');
}

setTimeout(() => fail('timeout: no result after 30 s'), 30000).unref();
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

// The operation name of a SOAP request body (the first element in the Body).
function operation(xml) {
	const m = /<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?([\w-]+)/.exec(xml || '');
	return m ? m[1] : '?';
}

function call(cam, method, ...args) {
	return new Promise((resolve, reject) => {
		cam[method](...args, (err, value) => (err ? reject(err) : resolve(value)));
	});
}

function describe(profile) {
	const vec = profile.videoEncoderConfiguration || {};
	const res = vec.resolution || {};
	return {
		token: profile.$ && profile.$.token,
		name: profile.name,
		encoding: vec.encoding,
		width: res.width,
		height: res.height,
		sourceToken: (profile.videoSourceConfiguration || {}).sourceToken,
	};
}

const cam = new Cam(
	{
		hostname,
		port: Number(port),
		username,
		password,
		timeout: 10000,
		useWSSecurity: auth !== 'digest',
	},
	async function (err) {
		if (err) {
			return fail(err);
		}
		// onvif 0.8.3 still calls back without an error when GetProfiles or GetVideoSources
		// fails (e.g. a wrong password: GetSystemDateAndTime and GetServices are pre-auth); it
		// only emits a 'warning' with the SOAP fault and leaves no profiles.
		if (!this.activeSource) {
			return fail('connected without media: ' + (warnings[0] || 'no active video source'));
		}
		try {
			const stream = await call(this, 'getStreamUri', { protocol: 'RTSP' });
			const snapshot = await call(this, 'getSnapshotUri');
			const info = await call(this, 'getDeviceInformation');
			finish(
				{
					connected: true,
					media2Support: Boolean(this.media2Support),
					services: Object.keys(this.uri || {}),
					streamUri: stream && stream.uri,
					snapshotUri: snapshot && snapshot.uri,
					deviceInformation: info,
					activeSource: this.activeSource || null,
					profiles: (this.profiles || []).map(describe),
					videoSources: (this.videoSources || []).map((v) => v.$ && v.$.token),
				},
				0,
			);
		} catch (e) {
			fail(e);
		}
	},
);

cam.on('rawRequest', (xml) => trace.push({ request: operation(xml) }));
cam.on('rawResponse', (xml, status) => trace.push({ response: operation(xml), status }));
cam.on('warning', (w) => warnings.push(String(w)));
