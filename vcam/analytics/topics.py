"""The event topics the analytics engine sends, as GetEventProperties describes them.

Names and item order follow the ONVIF Analytics Service Specification (Annex A) and what
Home Assistant's parser (PyPI onvif-parsers) reads: it takes the state from the first Data
item and tells rules apart by the Source items VideoSourceConfigurationToken,
VideoAnalyticsConfigurationToken and Rule. Video-source topics (MotionAlarm, Reolink-style
MyRuleDetector) name the video source in a single Source item called "Source".

No ONVIF topic exists for queues: tns1:RuleEngine/QueueMonitor/Queue is vcam's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from vcam.analytics.metadata import utc_time
from vcam.events.message import ItemTypes, TopicInfo

RULE_SOURCE: ItemTypes = (
    ("VideoSourceConfigurationToken", "tt:ReferenceToken"),
    ("VideoAnalyticsConfigurationToken", "tt:ReferenceToken"),
    ("Rule", "xs:string"),
)
VIDEO_SOURCE: ItemTypes = (("Source", "tt:ReferenceToken"),)

LINE_CROSSED = TopicInfo(
    "tns1:RuleEngine/LineDetector/Crossed",
    False,
    RULE_SOURCE,
    (("ObjectId", "tt:StringList"), ("ClassTypes", "tt:StringList")),
)
COUNTER = TopicInfo(
    "tns1:RuleEngine/CountAggregation/Counter", True, RULE_SOURCE, (("Count", "xs:int"),)
)
OCCUPANCY_COUNTER = TopicInfo(
    "tns1:RuleEngine/CountAggregation/OccupancyCounter", True, RULE_SOURCE, (("Count", "xs:int"),)
)
OBJECTS_INSIDE = TopicInfo(
    "tns1:RuleEngine/FieldDetector/ObjectsInside",
    True,
    RULE_SOURCE,
    (("IsInside", "xs:boolean"), ("ObjectId", "tt:StringList")),
)
# The specification's Data is ObjectId and Since; IsLoitering leads so that clients reading
# the first item as the state (Home Assistant does) get a boolean.
LOITERING = TopicInfo(
    "tns1:RuleEngine/LoiteringDetector/ObjectIsLoitering",
    True,
    RULE_SOURCE,
    (("IsLoitering", "xs:boolean"), ("ObjectId", "tt:StringList"), ("Since", "xs:dateTime")),
)
QUEUE = TopicInfo(
    "tns1:RuleEngine/QueueMonitor/Queue",
    True,
    RULE_SOURCE,
    (("Count", "xs:int"), ("AverageWaitTime", "xs:duration")),
)
MOTION_ALARM = TopicInfo(
    "tns1:VideoSource/MotionAlarm", True, VIDEO_SOURCE, (("State", "xs:boolean"),)
)
CELL_MOTION = TopicInfo(
    "tns1:RuleEngine/CellMotionDetector/Motion", True, RULE_SOURCE, (("IsMotion", "xs:boolean"),)
)
PEOPLE_DETECT = TopicInfo(
    "tns1:RuleEngine/MyRuleDetector/PeopleDetect", True, VIDEO_SOURCE, (("State", "xs:boolean"),)
)
FACE_DETECT = TopicInfo(
    "tns1:RuleEngine/MyRuleDetector/FaceDetect", True, VIDEO_SOURCE, (("State", "xs:boolean"),)
)
OBJECT_DETECTION = TopicInfo(
    "tns1:RuleEngine/ObjectDetection/Object", False, RULE_SOURCE, (("ClassTypes", "tt:StringList"),)
)

RULE_TOPICS: dict[str, tuple[TopicInfo, ...]] = {  # rule KIND -> the topics its rules send
    "LineDetector": (LINE_CROSSED,),
    "LineCounting": (COUNTER,),
    "FieldDetector": (OBJECTS_INSIDE,),
    "OccupancyCounting": (OCCUPANCY_COUNTER,),
    "LoiteringDetector": (LOITERING,),
    "QueueMonitor": (QUEUE,),
}
ALL_TOPICS: tuple[TopicInfo, ...] = (
    LINE_CROSSED,
    COUNTER,
    OCCUPANCY_COUNTER,
    OBJECTS_INSIDE,
    LOITERING,
    QUEUE,
    MOTION_ALARM,
    CELL_MOTION,
    PEOPLE_DETECT,
    FACE_DETECT,
    OBJECT_DETECTION,
)


def xs_bool(value: bool) -> str:
    return "true" if value else "false"


def xs_duration(seconds: float) -> str:
    """xs:duration in seconds with a tenth, e.g. PT12.3S."""
    return f"PT{max(0.0, seconds):.1f}S"


def xs_datetime(utc: datetime) -> str:
    return utc_time(utc)


def string_list(values: Iterable[object]) -> str:
    """tt:StringList: items separated by single spaces."""
    return " ".join(str(v) for v in values)
