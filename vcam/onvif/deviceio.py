"""The ONVIF DeviceIO service (ver10): the camera's physical inputs and outputs.

There is one video source and nothing else: no video or audio outputs, no audio sources, relays,
digital inputs or serial ports. The capabilities say so, and the list operations answer the one
source token or an empty (schema-valid) list, which is how clients (Profile T's DeviceIO, NVRs
probing for alarm relays) learn that a port is absent. GetRelayOutputs is the Device service's
element (the DeviceIO binding reuses tds:GetRelayOutputs), so it is answered for both. Older
deviceio.wsdl files (onvif-zeep-async's) send trt:GetVideoSources instead of tmd:GetVideoSources;
Media answers that one, routing being by body element.
"""

from __future__ import annotations

from collections.abc import Callable

from vcam.onvif.model import DeviceModel
from vcam.onvif.service import Handler, OnvifDispatcher, OnvifRequest
from vcam.onvif.soap import SERVICE_CAPABILITIES, TDS, TMD, AccessClass, Element, qname

DEVICEIO_VERSION = (21, 6)  # the deviceio.wsdl served from wsdl/


def deviceio_capabilities(model: DeviceModel) -> Element:
    """tmd:Capabilities, as GetServiceCapabilities and GetServices(IncludeCapability) send it."""
    counts = {"VideoSources": 1, "VideoOutputs": 0, "AudioSources": 0, "AudioOutputs": 0}
    counts |= {"RelayOutputs": 0, "SerialPorts": 0, "DigitalInputs": 0}
    return TMD.Capabilities({k: str(v) for k, v in counts.items()}, DigitalInputOptions="false")


def get_service_capabilities(req: OnvifRequest) -> list[Element]:
    return [TMD.GetServiceCapabilitiesResponse(deviceio_capabilities(req.model))]


def get_video_sources(req: OnvifRequest) -> list[Element]:
    return [TMD.GetVideoSourcesResponse(TMD.Token(req.model.source_token))]


def _empty(make: Callable[[], Element]) -> Handler:
    """A handler answering an empty list: the device has none of these."""

    def handler(req: OnvifRequest) -> list[Element]:
        return [make()]

    return handler


def register_deviceio(dispatcher: OnvifDispatcher) -> None:
    """Registers the DeviceIO read operations; all READ_MEDIA."""
    dispatcher.register(
        qname("tmd", "GetServiceCapabilities"),
        get_service_capabilities,
        access=SERVICE_CAPABILITIES,
    )
    ops: tuple[tuple[str, Handler], ...] = (
        (qname("tmd", "GetVideoSources"), get_video_sources),
        (qname("tmd", "GetVideoOutputs"), _empty(TMD.GetVideoOutputsResponse)),
        (qname("tmd", "GetAudioSources"), _empty(TMD.GetAudioSourcesResponse)),
        (qname("tmd", "GetAudioOutputs"), _empty(TMD.GetAudioOutputsResponse)),
        (qname("tmd", "GetDigitalInputs"), _empty(TMD.GetDigitalInputsResponse)),
        (qname("tmd", "GetSerialPorts"), _empty(TMD.GetSerialPortsResponse)),
        (qname("tds", "GetRelayOutputs"), _empty(TDS.GetRelayOutputsResponse)),
    )
    for name, handler in ops:
        dispatcher.register(name, handler, access=AccessClass.READ_MEDIA)
