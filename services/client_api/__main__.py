from services.common.service_main import run
from services.common.settings import get_settings

run("services.client_api.app:create_app", "client-api", get_settings().client_api_port)
