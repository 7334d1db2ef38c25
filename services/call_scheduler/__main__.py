from services.common.service_main import run
from services.common.settings import get_settings

run("services.call_scheduler.app:create_app", "call-scheduler", get_settings().call_scheduler_port)
