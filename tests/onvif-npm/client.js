// The npm `onvif` package (what UniFi Protect bundles) against edge, for tests/test_onvif_npm.py.
// Usage: node client.js HOST PORT USER PASSWORD
// Prints one JSON object per line: {"step": ...} for each call of the connect sequence and the
// media calls, {"ready": true} once a PullPoint listener is in place, then {"event": ...} for
// every notification. Any error prints {"error": ...} and exits 1.
'use strict';

const { Cam } = require('onvif');

const [host, port, username, password] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (where, err) => {
	out({ error: `${where}: ${err && err.message ? err.message : err}` });
	process.exit(1);
};
const call = (fn, ...args) => new Promise((resolve, reject) => {
	fn(...args, (err, data) => (err ? reject(err) : resolve(data)));
});

const cam = new Cam({ hostname: host, port: Number(port), username, password, autoconnect: false, timeout: 10000 });

(async () => {
	try {
		// GetSystemDateAndTime, GetServices (or GetCapabilities), GetProfiles, GetVideoSources
		await call(cam.connect.bind(cam));
	} catch (err) {
		fail('connect', err);
	}
	out({ step: 'connect', media2: Boolean(cam.media2Support), uri: Object.keys(cam.uri || {}) });
	try {
		const info = await call(cam.getDeviceInformation.bind(cam));
		out({ step: 'deviceInformation', manufacturer: info.manufacturer, serialNumber: info.serialNumber });
		const profiles = cam.profiles.map((p) => {
			const enc = p.videoEncoderConfiguration || {};
			return {
				token: p.$.token,
				encoding: enc.encoding,
				width: enc.resolution && enc.resolution.width,
				height: enc.resolution && enc.resolution.height,
				frameRateLimit: enc.rateControl && enc.rateControl.frameRateLimit,
				bitrateLimit: enc.rateControl && enc.rateControl.bitrateLimit,
				govLength: enc.H264 && enc.H264.govLength,
				h264Profile: enc.H264 && enc.H264.H264Profile,
				sessionTimeout: enc.sessionTimeout,
			};
		});
		out({ step: 'profiles', profiles });
		for (const p of profiles) {
			const stream = await call(cam.getStreamUri.bind(cam), { protocol: 'RTSP', profileToken: p.token });
			const snapshot = await call(cam.getSnapshotUri.bind(cam), { profileToken: p.token });
			out({ step: 'uris', token: p.token, stream: stream.uri, snapshot: snapshot.uri });
		}
		const encs = await call(cam.getVideoEncoderConfigurations.bind(cam));
		out({ step: 'encoders', tokens: encs.map((e) => e.$.token), rateControl: encs.map((e) => e.rateControl) });
		const opts = await call(cam.getVideoEncoderConfigurationOptions.bind(cam), { profileToken: profiles[0].token });
		out({ step: 'encoderOptions', h264: opts.H264 });
		const props = await call(cam.getEventProperties.bind(cam));
		out({ step: 'eventProperties', topics: Object.keys(props.topicSet || {}) });
	} catch (err) {
		fail('media', err);
	}
	cam.on('eventsError', (err) => out({ eventsError: String(err && err.message ? err.message : err) }));
	cam.on('event', (message) => {
		const m = message.message.message;
		const items = (x) => {
			const list = x && x.simpleItem ? (Array.isArray(x.simpleItem) ? x.simpleItem : [x.simpleItem]) : [];
			return Object.fromEntries(list.map((i) => [i.$.Name, i.$.Value]));
		};
		out({
			event: {
				topic: message.topic._,
				operation: m.$.PropertyOperation,
				source: items(m.source),
				data: items(m.data),
			},
		});
	});
	// the listener makes the library create its PullPoint subscription and start pulling
	const wait = setInterval(() => {
		if (cam.events && cam.events.subscription) {
			clearInterval(wait);
			out({ ready: true });
		}
	}, 20);
})();
