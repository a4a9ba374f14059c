from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("workflows/<slug:slug>/", views.workflow_page, name="workflow-page"),
    path("runs/", views.runs_page, name="runs-page"),
    path("runs/<int:run_id>/", views.run_page, name="run-page"),
    path("api/", include("flows.urls")),
]

handler404 = "dashboard.views.not_found"
handler500 = "dashboard.views.server_error"
